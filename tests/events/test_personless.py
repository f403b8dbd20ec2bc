"""Events without a profile ("personless"): a source setting and a per-event flag in every
wire format. They are stored, sessionized and routed by rules, but create no profile, identity
or session person, touch no traits or counters, and a later identify of their distinct_id does
not pull them into the person."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry

from apps.events import selectors as event_selectors
from apps.events.models import Event, Session
from apps.profiles import services as profile_services
from apps.profiles.models import Group, Identity, Profile
from apps.segments.filtering import evaluate, parse_filter, parse_text, profiles_matching
from apps.sources.models import EventSource
from apps.workflows import matching
from apps.workflows.models import WorkflowRun
from tests.events.track_helpers import error, event, ok
from tests.factories import ago, chain, node, profile_of, published, route, source_make, user_make
from tests.users import token_client


def _track(tracker: Any, *events: dict[str, Any]) -> dict[str, Any]:
    return ok(tracker.post({"batch": list(events)} if len(events) > 1 else events[0]))


def _nobody_made() -> None:
    assert Profile.objects.count() == 0
    assert Identity.objects.count() == 0


# --- the native format and the source setting ------------------------------------------------


def test_a_personless_event_is_stored_and_sessionized_but_makes_no_profile(tracker):
    body = _track(
        tracker,
        event("page_view", "visitor-1", profile=False, properties={"$groups": {"company": "a"}}),
        event("signed_up", "visitor-1", profile=False),
    )

    assert body["accepted"] == 2
    events = list(Event.objects.order_by("id"))
    assert [e.personless for e in events] == [True, True]
    assert all(e.processed_at is not None for e in events)
    _nobody_made()
    assert Group.objects.count() == 0  # the $groups property joined no group
    [session] = Session.objects.all()
    assert session.personless
    assert session.event_count == 2
    assert {e.session_id for e in events} == {session.pk}


def test_a_person_s_events_and_personless_ones_keep_to_their_own_sessions(tracker):
    _track(tracker, event("page_view", "ann"))
    _track(tracker, event("page_view", "ann", profile=False))

    ann = profile_of("ann")
    assert (ann.event_count, ann.session_count) == (1, 1)
    sessions = Session.objects.order_by("started_at")
    assert sorted(s.personless for s in sessions) == [False, True]


def test_the_source_setting_makes_events_personless_unless_an_event_says_otherwise(tracker):
    EventSource.objects.filter(write_key=tracker.write_key).update(with_profiles=False)
    _track(tracker, event("page_view", "anon-1"))
    _nobody_made()

    _track(tracker, event("purchase", "buyer-1", profile=True))
    assert profile_of("buyer-1").event_count == 1
    assert not Event.objects.get(event_name="purchase").personless
    assert not Identity.objects.filter(distinct_id="anon-1").exists()


def test_identity_calls_act_on_profiles_whatever_the_source_setting(tracker):
    EventSource.objects.filter(write_key=tracker.write_key).update(with_profiles=False)

    ok(tracker.post({"distinct_id": "u-1", "traits": {"plan": "pro"}}, path="/api/identify"))

    assert profile_of("u-1").traits == {"plan": "pro"}
    assert not Event.objects.get(event_name="$identify").personless


def test_a_flag_that_is_not_a_boolean_is_rejected_by_index_and_nothing_of_it_stored(tracker):
    body = ok(
        tracker.post({"batch": [event("a", "v-1", profile="no"), event("b", "v-1", profile=False)]})
    )

    assert body["accepted"] == 1
    assert body["rejected"] == [
        {"index": 0, "field": "profile", "error": "must be true or false, not a string"}
    ]
    assert list(Event.objects.values_list("event_name", flat=True)) == ["b"]


def test_a_later_identify_does_not_pull_personless_events_into_the_person(tracker):
    _track(tracker, event("page_view", "anon-7", profile=False))
    _track(tracker, event("pricing_viewed", "anon-7", profile=False))
    ok(tracker.post({"distinct_id": "user-7", "anonymous_id": "anon-7"}, path="/api/identify"))

    person = profile_of("anon-7")
    assert person == profile_of("user-7")
    # Only the identify call itself is the person's.
    assert person.event_count == 1
    assert person.session_count == 1
    recounted = profile_services.profile_recount(profile=person)
    assert (recounted.event_count, recounted.session_count) == (1, 1)
    ids = list(person.identities.values_list("distinct_id", flat=True))
    timeline = event_selectors.event_timeline(distinct_ids=ids)
    assert [e.event_name for e in timeline] == ["$identify"]
    for text in ('performed "pricing_viewed"', "performed any at_least 2"):
        filt = parse_filter(parse_text(text), scope="profile")
        assert not profiles_matching(filt).filter(pk=person.pk).exists(), text
        assert not evaluate(filt, profile=person), text


# --- rules ------------------------------------------------------------------------------------


@pytest.fixture
def fresh_rules() -> Iterator[None]:
    matching.rules_cache_clear()
    yield
    matching.rules_cache_clear()


def test_rules_run_on_personless_events_without_a_profile(tracker, fresh_rules):
    workflow = published(chain(node("n1", "log", message="seen")), name="seen")
    route(workflow, "pricing_viewed")
    _track(tracker, event("pricing_viewed", "anon-9", profile=False))

    [run] = WorkflowRun.objects.filter(workflow=workflow)
    assert run.distinct_id == "anon-9"
    assert run.profile_id is None
    _nobody_made()


# --- the other wire formats -------------------------------------------------------------------


def test_segment_and_rudderstack_flags(tracker):
    messages = [
        {
            "type": "track",
            "event": "a",
            "anonymousId": "s-1",
            "messageId": "m1",
            "properties": {"$process_person_profile": False},
        },
        {
            "type": "page",
            "anonymousId": "s-1",
            "messageId": "m2",
            "context": {"profile": False},
        },
        {"type": "track", "event": "c", "anonymousId": "s-2", "messageId": "m3"},
        {
            "type": "identify",
            "userId": "s-3",
            "messageId": "m4",
            "context": {"profile": False},
        },
        {
            "type": "track",
            "event": "e",
            "anonymousId": "s-4",
            "messageId": "m5",
            "properties": {"$process_person_profile": "false"},
        },
    ]
    response = tracker.post({"batch": messages}, path="/v1/batch")

    assert response.status_code == 200, response.content
    stored = dict(Event.objects.values_list("message_id", "personless"))
    assert stored == {"m1": True, "m2": True, "m3": False}
    assert set(Identity.objects.values_list("distinct_id", flat=True)) == {"s-2"}
    # The identify call that asked for no profile, and the flag of the wrong type: refused,
    # by index, saying why (the batch endpoint logs them and answers 200, as Segment's does).
    assert not Event.objects.filter(message_id__in=["m4", "m5"]).exists()


def test_segment_single_identify_with_the_personless_flag_is_a_clear_400(tracker):
    response = tracker.post(
        {"userId": "s-9", "traits": {"plan": "pro"}, "context": {"profile": False}},
        path="/v1/identify",
    )

    assert response.status_code == 400, response.content
    assert "always act on a profile" in response.content.decode()
    assert Event.objects.count() == 0
    _nobody_made()


def test_tracardi_options_profile_false(tracker, source):
    body = tracker.post(
        {
            "source": {"id": str(source.pk)},
            "options": {"profile": False},
            "session": {"id": "sess-1"},
            "events": [
                {"type": "page-view"},
                {"type": "login", "options": {"profile": True}},
            ],
        },
        path="/track",
        auth="none",
    )

    assert body.status_code == 200, body.content
    stored = dict(Event.objects.values_list("event_name", "personless"))
    assert stored == {"page-view": True, "login": False}
    [person] = Profile.objects.all()
    assert person.event_count == 1


# --- the source setting in the admin and the API ----------------------------------------------


def test_the_api_changes_the_setting_and_ingest_follows(tracker, source, api_client):
    response = api_client.patch(
        f"/api/v1/sources/{source.pk}/", {"with_profiles": False}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["with_profiles"] is False
    source.refresh_from_db()
    assert source.with_profiles is False
    assert LogEntry.objects.filter(object_id=str(source.pk)).exists()  # audited
    _track(tracker, event("page_view", "v-2"))
    assert Event.objects.get().personless
    _nobody_made()
    listed = api_client.get("/api/v1/events", {"personless": "true"}).json()["results"]
    assert [(e["event_name"], e["personless"], e["platform"]) for e in listed] == [
        ("page_view", True, False)
    ]
    assert api_client.get("/api/v1/events", {"personless": "false"}).json()["results"] == []
    [session] = api_client.get("/api/v1/sessions").json()["results"]
    assert session["personless"] is True


def test_the_api_refuses_a_bad_setting_and_changes_nothing(source, api_client):
    response = api_client.patch(
        f"/api/v1/sources/{source.pk}/", {"with_profiles": "maybe"}, format="json"
    )

    err = error(response, 400)
    assert err["field"] == "with_profiles"
    source.refresh_from_db()
    assert source.with_profiles is True


def test_the_api_needs_the_change_permission(source, db):
    viewer = token_client(user_make("viewer", "sources.view_eventsource"))

    response = viewer.patch(
        f"/api/v1/sources/{source.pk}/", {"with_profiles": False}, format="json"
    )

    assert response.status_code == 403
    source.refresh_from_db()
    assert source.with_profiles is True


def test_the_admin_edits_the_setting(admin_client, db):
    source = source_make("Blog")
    url = f"/admin/sources/eventsource/{source.pk}/change/"

    page = admin_client.get(url)
    assert b'name="with_profiles"' in page.content


def test_the_dashboard_counts_personless_events_but_not_as_active_people(tracker):
    from apps.insights import selectors as insight_selectors

    # A known person, last active 10 days ago, whose id now sends personless events.
    identified = {"distinct_id": "known-1", "timestamp": ago(days=10).isoformat()}
    ok(tracker.post(identified, path="/api/identify"))
    _track(tracker, event("page_view", "known-1", profile=False))
    _track(tracker, event("page_view", "anon-5", profile=False))

    week = next(p for p in insight_selectors.home_periods() if p.days == 7)
    assert (week.events, week.people) == (2, 0)
    month = next(p for p in insight_selectors.home_periods() if p.days == 30)
    assert (month.events, month.people) == (3, 1)
    series = insight_selectors.active_users_series(days=1)
    assert series["series"][0]["data"][-1] == 0  # nobody active today
    live = {e.distinct_id: e.profile_id for e in insight_selectors.live_events()}
    assert live["anon-5"] is None
    assert set(live) == {"known-1", "anon-5"}
