"""Platform events are not activity: what the platform emits itself (segment_entered, a
workflow's emit_event) is marked where it is emitted, moves no last_seen, counter or session,
and `performed any` leaves it out, while naming it still matches and rules still route on it.
The documented "inactive users" segment keeps exactly the people a plain reference computes."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import TestCase
from django.utils import timezone

from apps.events import services as event_services
from apps.events.models import Event
from apps.profiles import services as profile_services
from apps.segments import services as segment_services
from apps.segments.filtering import evaluate, parse_filter, parse_text, profiles_matching
from apps.segments.models import Segment
from apps.workflows import matching
from apps.workflows.models import WorkflowRun
from tests.factories import chain, members, node, profile_of, published, route, segment_events

INACTIVE = "not_performed any within_days 7 and last_seen in_the_last 30 days"


def _emit(distinct_id: str, name: str = "segment_entered", **fields) -> Event:
    with TestCase.captureOnCommitCallbacks(execute=True):
        pk = event_services.events_emit(distinct_id=distinct_id, event_name=name, **fields)
    return Event.objects.get(pk=pk)


def test_emitted_events_are_marked_and_a_client_category_cannot_pass_for_one(people):
    people.track("ann", "page_view")
    ann = _emit("ann", properties={"segment": "vip"})
    with TestCase.captureOnCommitCallbacks(execute=True):
        [many] = event_services.events_emit_many(
            emissions=[event_services.Emission(distinct_id="ann", event_name="segment_exited")]
        )
    # A client may send category "internal": that does not make its event the platform's.
    people.tracker.post({"event_name": "page_view", "distinct_id": "ann", "category": "internal"})

    assert ann.platform
    assert Event.objects.get(pk=many).platform
    client_events = Event.objects.filter(source__bridge="rest")
    assert client_events.count() == 2
    assert not any(e.platform for e in client_events)


def test_platform_events_move_no_last_seen_counter_or_session(people):
    people.track("bob", "page_view", days_ago=20)
    before = profile_of("bob")
    assert (before.event_count, before.session_count) == (1, 1)

    emitted = _emit("bob", properties={"segment": "vip"})

    emitted.refresh_from_db()
    assert emitted.processed_at is not None  # it went through processing
    assert emitted.session_id is None  # not a visit
    after = profile_of("bob")
    assert (after.event_count, after.session_count) == (1, 1)
    assert after.last_seen == before.last_seen
    assert after.first_seen == before.first_seen
    # A recount (after an unmerge) agrees with the counters kept event by event.
    recounted = profile_services.profile_recount(profile=after)
    assert (recounted.event_count, recounted.session_count) == (1, 1)
    assert recounted.last_seen == before.last_seen


def test_performed_any_is_activity_while_a_named_platform_event_still_matches(people):
    people.track("cat", "page_view", days_ago=20)
    _emit("cat", "segment_entered")
    cat = profile_of("cat")

    for text, expected in (
        ("performed any within_days 7", False),
        ("not_performed any within_days 7", True),
        ('performed "segment_entered" within_days 7', True),
        ('performed "segment_entered" within_days 7 or traits.x is_set', True),
        ("performed any at_least 2", False),
        ("performed any within_days 7 or traits.x is_set", False),
    ):
        filt = parse_filter(parse_text(text), scope="profile")
        in_sql = profiles_matching(filt).filter(pk=cat.pk).exists()
        in_memory = evaluate(filt, profile=cat)
        assert (in_sql, in_memory) == (expected, expected), text


@pytest.fixture
def fresh_rules() -> Iterator[None]:
    matching.rules_cache_clear()
    yield
    matching.rules_cache_clear()


def test_rules_still_route_on_platform_events(people, fresh_rules):
    workflow = published(chain(node("n1", "log", message="entered")), name="welcome")
    route(workflow, "segment_entered")
    people.track("dan", "page_view")

    _emit("dan", "segment_entered")

    assert WorkflowRun.objects.filter(workflow=workflow).count() == 1


# --- the documented example: "inactive users" -------------------------------------------------


def _reference(histories: dict[str, list[float]]) -> set[str]:
    """Who is inactive, from the people's own events only: none in the last 7 days, the last
    one within 30 days."""
    return {
        person for person, ages in histories.items() if ages and min(ages) > 7 and min(ages) < 30
    }


def test_inactive_users_keeps_exactly_the_reference_through_recompute_and_real_time(
    people, make_segment
):
    rng = random.Random(11)
    # Ages in days, away from the 7- and 30-day edges so the test's own duration can't matter.
    choices = [0.5, 2, 5, 9, 12, 20, 26, 33, 45, 60]
    histories = {
        f"p{i}": sorted(rng.sample(choices, rng.randint(1, 3)), reverse=True) for i in range(24)
    }
    for person, ages in histories.items():
        for age in ages:
            people.track(person, "page_view", days_ago=age)
    expected = _reference(histories)
    assert 3 <= len(expected) <= 21  # the draw has people on both sides

    make_segment("inactive", parse_text(INACTIVE), name="Inactive users")
    assert members("inactive") == expected
    # The entries were emitted and processed: they made nobody active again.
    entered = segment_events("segment_entered", "inactive")
    assert {e.distinct_id for e in entered} == expected
    assert all(e.processed_at is not None and e.platform for e in entered)

    with TestCase.captureOnCommitCallbacks(execute=True):
        result = segment_services.segment_recompute(segment=Segment.objects.get(key="inactive"))
    assert (result.entered, result.exited, result.members) == (0, 0, len(expected))
    assert members("inactive") == expected

    # Real time: members who come back leave; people lapsed beyond 30 days who send an event
    # from 10 days ago (a late batch) enter; the emitted events change nothing.
    back = sorted(expected)[:2]
    lapsed = sorted(p for p, ages in histories.items() if min(ages) > 30)[:2]
    assert len(back) == len(lapsed) == 2
    for person in back:
        people.track(person, "page_view", days_ago=1)
        histories[person].append(1)
    for person in lapsed:
        people.track(person, "page_view", days_ago=10)
        histories[person].append(10)
    expected = _reference(histories)
    assert members("inactive") == expected
    exited = {e.distinct_id for e in segment_events("segment_exited", "inactive")}
    assert exited == set(back)
    assert {e.distinct_id for e in segment_events("segment_entered", "inactive")} >= set(lapsed)

    # A second recompute (as the periodic task runs it) agrees, and a day later too.
    with TestCase.captureOnCommitCallbacks(execute=True):
        segment_services.segment_recompute(segment=Segment.objects.get(key="inactive"))
    assert members("inactive") == expected
    for person in expected:
        assert profile_of(person).last_seen < timezone.now() - timedelta(days=7)
