"""Real time: the event that qualifies a profile makes it enter within its own processing,
with a segment_entered event; leaving is recorded and emitted too."""

from __future__ import annotations

from django.test import TestCase

from apps.events.models import Event
from apps.segments.models import Segment, SegmentMembership
from apps.segments.services import membership, realtime
from tests.factories import BUYER, PRO, members, profile_of, segment_events


def test_an_event_that_qualifies_enters_the_profile_and_emits_segment_entered(people, make_segment):
    make_segment("buyers", BUYER, name="Buyers")
    people.track("ann", "purchase")
    assert members("buyers") == set()

    people.track("ann", "purchase")  # the second purchase qualifies

    assert members("buyers") == {"ann"}
    [entered] = segment_events("segment_entered", "buyers")
    assert entered.distinct_id == "ann"
    assert entered.properties == {"segment": "buyers", "segment_name": "Buyers"}
    assert entered.category == "internal"
    assert entered.processed_at is not None  # it went through the pipeline
    membership = SegmentMembership.objects.get(segment__key="buyers")
    assert entered.message_id == f"segment_entered:{membership.pk}"
    assert membership.profile_id == profile_of("ann").pk


def test_trait_and_behaviour_combined(people, make_segment):
    make_segment("pro-buyers", {"and": [PRO, BUYER]})
    people.track("bob", "purchase")
    people.track("bob", "purchase")
    assert members("pro-buyers") == set()

    people.identify("bob", traits={"plan": "pro"})

    assert members("pro-buyers") == {"bob"}


def test_people_operations_outside_events_reevaluate(people, make_segment):
    make_segment("pro", PRO)
    people.people("cat", set={"plan": "pro"})
    assert members("pro") == {"cat"}

    people.people("cat", set={"plan": "free"})

    assert members("pro") == set()
    [stay] = SegmentMembership.objects.filter(segment__key="pro")
    assert stay.exited_at is not None  # the history stays
    [exited] = segment_events("segment_exited", "pro")
    assert exited.distinct_id == "cat"
    assert exited.message_id == f"segment_exited:{stay.pk}"


def test_leaving_and_entering_again_keeps_each_stay(people, make_segment):
    make_segment("pro", PRO)
    for plan in ("pro", "free", "pro"):
        people.people("dan", set={"plan": plan})

    stays = SegmentMembership.objects.filter(segment__key="pro").order_by("id")
    assert [s.exited_at is None for s in stays] == [False, True]
    assert len(segment_events("segment_entered", "pro")) == 2
    assert len(segment_events("segment_exited", "pro")) == 1


def test_profile_stats_conditions_follow_each_event(people, make_segment):
    make_segment("active", {"property": "event_count", "operator": "greater_than", "value": 2})
    people.track("eve")
    people.track("eve")
    assert members("active") == set()

    people.track("eve")

    assert members("active") == {"eve"}


def test_segments_not_referencing_the_event_are_not_evaluated(people, make_segment, monkeypatch):
    make_segment("buyers", BUYER)
    make_segment("pro", PRO)
    seen = []
    real = realtime._evaluate
    monkeypatch.setattr(
        realtime,
        "_evaluate",
        lambda segment, *args: seen.append(segment.key) or real(segment, *args),
    )

    people.track("fay", "page_view")

    assert seen == []  # neither references page views, profile stats or traits
    people.track("fay", "purchase")
    assert "buyers" in seen
    assert "pro" not in seen


def test_in_segment_follows_the_segment_it_names(people, make_segment):
    make_segment("pro", PRO)
    make_segment("pro-buyers", {"and": [{"in_segment": "pro"}, BUYER]})
    people.track("gus", "purchase")
    people.track("gus", "purchase")
    assert members("pro-buyers") == set()

    people.people("gus", set={"plan": "pro"})

    assert members("pro") == {"gus"}
    assert members("pro-buyers") == {"gus"}


def test_emission_is_idempotent(people, make_segment):
    make_segment("pro", PRO)
    people.people("hal", set={"plan": "pro"})
    stay = SegmentMembership.objects.get(segment__key="pro")
    segment = stay.segment
    before = Event.objects.count()

    with TestCase.captureOnCommitCallbacks(execute=True):
        membership._emit(
            segment, entered=[(stay.pk, stay.profile_id)], exited=[], now=stay.entered_at
        )

    assert Event.objects.count() == before  # same stay, same message id: stored once


def test_static_segments_ignore_events(people, make_segment):
    make_segment("vip", kind="static")
    people.track("ian", "purchase")

    assert members("vip") == set()


def test_a_stored_filter_that_no_longer_parses_does_not_stop_processing(people, make_segment):
    make_segment("broken", PRO)
    make_segment("buyers", BUYER)
    Segment.objects.filter(key="broken").update(filter={"property": "nope.x", "operator": "is"})

    people.track("joe", "purchase")
    people.track("joe", "purchase")

    assert members("buyers") == {"joe"}
    assert Event.objects.filter(distinct_id="joe", processed_at__isnull=True).count() == 0
