"""Sessions as a marketer counts them: a new one after the source's inactivity timeout, at
midnight in the visitor's timezone, and when the UTM campaign changes; a client's own session
id is respected; a session keeps the context it began in and its events inherit it."""

from __future__ import annotations

from datetime import UTC, datetime

from django.test import Client

from apps.events.models import Event, Session
from apps.profiles import selectors as profile_selectors
from apps.sources import services as source_services
from tests.clients import TrackingClient
from tests.events.processing_helpers import (
    CHROME_WINDOWS,
    FIREFOX_LINUX,
    SAFARI_IPHONE,
    T0,
    send,
    session_of,
    sessions_by_event,
    visit,
)


def _groups() -> list[list[str]]:
    """The events grouped by session, each group in time order, groups by start."""
    groups: dict[object, list[str]] = {}
    for name, session_id in Event.objects.order_by("timestamp").values_list(
        "event_name", "session_id"
    ):
        assert session_id is not None, f"{name} has no session"
        groups.setdefault(session_id, []).append(name)
    return list(groups.values())


# --- inactivity timeout -----------------------------------------------------------------------


def test_events_within_the_timeout_are_one_session_measured_from_the_last_event(tracker):
    for n, minutes in enumerate([0, 25, 50, 75, 100]):  # each gap 25 minutes, 100 in all
        send(tracker, visit(f"e{n}", minutes=minutes))

    assert _groups() == [["e0", "e1", "e2", "e3", "e4"]]
    session = Session.objects.get()
    assert session.event_count == 5
    assert session.started_at == T0
    assert (session.last_event_at - session.started_at).total_seconds() == 100 * 60


def test_a_gap_over_the_default_30_minutes_starts_a_new_session(tracker):
    send(tracker, visit("first", minutes=0))
    send(tracker, visit("same", minutes=30))  # exactly the timeout: still the same visit
    send(tracker, visit("next", minutes=60.5))  # 30.5 minutes of silence

    assert _groups() == [["first", "same"], ["next"]]


def test_the_timeout_applies_within_one_batch_too(tracker):
    send(tracker, visit("a", minutes=0), visit("b", minutes=10), visit("c", minutes=45))

    assert _groups() == [["a", "b"], ["c"]]


def test_the_source_timeout_is_used(db):
    kiosk = source_services.source_create(name="Kiosk", session_timeout_minutes=5)
    tracker = TrackingClient(Client(), kiosk.write_key)

    send(tracker, visit("a", minutes=0), visit("b", minutes=4), visit("c", minutes=10))

    assert _groups() == [["a", "b"], ["c"]]


def test_a_batch_in_any_order_is_sessionized_in_time_order(tracker):
    send(tracker, visit("c", minutes=20), visit("a", minutes=0), visit("d", minutes=90))
    send(tracker, visit("b", minutes=10))  # arrives late, inside the first visit

    assert _groups() == [["a", "b", "c"], ["d"]]
    first = session_of("a")
    assert (first.event_count, first.started_at) == (3, T0)


def test_people_have_their_own_sessions(tracker):
    send(
        tracker,
        visit("ann_1", "ann", minutes=0),
        visit("bob_1", "bob", minutes=1),
        visit("ann_2", "ann", minutes=2),
    )

    assert session_of("ann_1") == session_of("ann_2")
    assert session_of("bob_1") != session_of("ann_1")
    assert session_of("bob_1").distinct_id == "bob"


def test_sources_have_their_own_sessions(tracker, db):
    app = source_services.source_create(name="App")
    send(tracker, visit("web", minutes=0))
    send(TrackingClient(Client(), app.write_key), visit("app", minutes=1))

    assert session_of("web") != session_of("app")
    assert session_of("app").source_id == app.pk


# --- midnight in the visitor's timezone -------------------------------------------------------

NIGHT = datetime(2025, 3, 4, 22, 0, tzinfo=UTC)  # 23:00 in Warsaw (UTC+1), 17:00 in New York


def test_midnight_in_the_visitors_timezone_starts_a_new_session(tracker):
    warsaw = {"timezone": "Europe/Warsaw"}
    send(
        tracker,
        visit("before", minutes=50, start=NIGHT, context=warsaw),  # 23:50 in Warsaw
        visit("after", minutes=70, start=NIGHT, context=warsaw),  # 00:10 next day
        visit("later", minutes=80, start=NIGHT, context=warsaw),
    )

    assert _groups() == [["before"], ["after", "later"]]
    assert session_of("after").timezone == "Europe/Warsaw"


def test_utc_midnight_does_not_split_a_visitor_elsewhere(tracker):
    new_york = {"timezone": "America/New_York"}
    send(
        tracker,
        visit("evening_1", minutes=110, start=NIGHT, context=new_york),  # 23:50 UTC, 18:50 local
        visit("evening_2", minutes=130, start=NIGHT, context=new_york),  # 00:10 UTC, 19:10 local
    )

    assert _groups() == [["evening_1", "evening_2"]]


def test_without_a_timezone_there_is_no_midnight_split(tracker):
    send(
        tracker,
        visit("before", minutes=110, start=NIGHT),  # 23:50 UTC
        visit("after", minutes=130, start=NIGHT),  # 00:10 UTC
    )

    assert _groups() == [["before", "after"]]


def test_the_session_timezone_splits_events_that_carry_none(tracker):
    """Only the first event of a visit may carry the context (as browser SDKs often do)."""
    send(tracker, visit("before", minutes=50, start=NIGHT, context={"timezone": "Europe/Warsaw"}))
    send(tracker, visit("after", minutes=70, start=NIGHT))

    assert _groups() == [["before"], ["after"]]


# --- UTM campaign changes ---------------------------------------------------------------------


def _campaign(name: str) -> dict[str, object]:
    return {"campaign": {"source": "ads", "campaign": name}}


def test_a_new_campaign_starts_a_new_session(tracker):
    send(
        tracker,
        visit("ad_a", minutes=0, context=_campaign("spring")),
        visit("browse", minutes=2),  # no campaign: the visit goes on
        visit("ad_b", minutes=5, context=_campaign("summer")),
        visit("browse_more", minutes=6),
    )

    assert _groups() == [["ad_a", "browse"], ["ad_b", "browse_more"]]
    assert session_of("ad_a").utm_campaign == "spring"
    assert session_of("browse_more").utm_campaign == "summer"


def test_the_same_campaign_again_continues_the_session(tracker):
    send(tracker, visit("ad", minutes=0, context=_campaign("spring")))
    send(tracker, visit("ad_again", minutes=3, context=_campaign("spring")))

    assert _groups() == [["ad", "ad_again"]]


def test_a_campaign_change_is_seen_in_the_page_url_too(tracker):
    send(
        tracker,
        visit("a", minutes=0, context={"page": {"url": "https://shop.example/?utm_campaign=x"}}),
        visit("b", minutes=1, context={"page": {"url": "https://shop.example/?utm_campaign=y"}}),
    )

    assert _groups() == [["a"], ["b"]]


def test_a_direct_visit_clicking_an_ad_starts_a_campaign_session(tracker):
    send(tracker, visit("direct", minutes=0), visit("ad", minutes=3, context=_campaign("promo")))

    assert _groups() == [["direct"], ["ad"]]


def test_coming_back_through_the_first_campaign_is_a_new_session_not_the_old_one(tracker):
    """spring, then summer, then spring again within minutes: three visits, as Google
    Analytics counts them; the third is not folded back into the first."""
    send(tracker, visit("spring_1", minutes=0, context=_campaign("spring")))
    send(tracker, visit("summer", minutes=5, context=_campaign("summer")))
    send(tracker, visit("spring_2", minutes=10, context=_campaign("spring")))
    send(tracker, visit("spring_2_page", minutes=11))

    assert _groups() == [["spring_1"], ["summer"], ["spring_2", "spring_2_page"]]
    assert [s.event_count for s in Session.objects.order_by("started_at")] == [1, 1, 2]


# --- client-supplied session ids --------------------------------------------------------------


def test_a_client_session_id_is_respected_across_timeout_midnight_and_campaigns(tracker):
    send(
        tracker,
        visit("a", minutes=0, session_id="tab-1", context={"timezone": "Europe/Warsaw"}),
        visit("b", minutes=300, session_id="tab-1", context=_campaign("other")),
    )
    send(tracker, visit("c", minutes=900, session_id="tab-1"))

    assert _groups() == [["a", "b", "c"]]
    session = Session.objects.get()
    assert (session.key, session.event_count) == ("tab-1", 3)


def test_two_client_session_ids_are_two_sessions_even_at_the_same_moment(tracker):
    send(
        tracker,
        visit("tab_1", minutes=0, session_id="tab-1"),
        visit("tab_2", minutes=0, session_id="tab-2"),
    )

    assert {session_of("tab_1").key, session_of("tab_2").key} == {"tab-1", "tab-2"}


def test_a_client_session_is_found_again_by_later_requests(tracker):
    send(tracker, visit("first", minutes=0, session_id="s-42"))
    send(tracker, visit("second", minutes=5, session_id="s-42"))

    assert session_of("first") == session_of("second")
    assert Session.objects.get().event_count == 2


# --- the session keeps its context; events inherit it -----------------------------------------


def test_the_session_keeps_the_context_it_began_in(tracker):
    landing = "https://shop.example/shoes?utm_source=google&utm_medium=cpc&utm_campaign=shoes"
    send(
        tracker,
        visit(
            "landing",
            minutes=0,
            context={
                "page": {"url": landing, "referrer": "https://www.google.com/"},
                "user_agent": SAFARI_IPHONE,
            },
        ),
    )
    send(
        tracker,
        visit(
            "product",
            minutes=3,
            context={
                "page": {
                    "url": "https://shop.example/shoes/red",
                    "referrer": "https://shop.example/shoes",
                },
                "user_agent": FIREFOX_LINUX,
            },
        ),
        visit("checkout", minutes=6, context={"user_agent": CHROME_WINDOWS}),
    )

    assert len(set(sessions_by_event().values())) == 1
    session = session_of("checkout")
    assert session.landing_page == landing
    assert (session.referrer, session.referring_domain) == (
        "https://www.google.com/",
        "www.google.com",
    )
    assert (session.utm_source, session.utm_medium, session.utm_campaign) == (
        "google",
        "cpc",
        "shoes",
    )
    assert (session.browser, session.os, session.device_type) == ("Mobile Safari", "iOS", "mobile")
    assert session.event_count == 3


def test_every_event_of_a_visit_points_at_its_session(tracker):
    send(
        tracker,
        visit("a", minutes=0, context={"page": {"url": "https://shop.example/?utm_source=fb"}}),
        visit("b", minutes=1),
        visit("c", minutes=2),
    )

    sessions = {e.session for e in Event.objects.select_related("session")}
    assert len(sessions) == 1
    assert sessions.pop().utm_source == "fb"
    assert not Event.objects.filter(processed_at__isnull=True).exists()


def test_profiles_count_their_sessions(tracker):
    send(tracker, visit("a", minutes=0), visit("b", minutes=5), visit("c", minutes=120))

    profile = profile_selectors.profile_get_for_distinct_id("visitor-1")
    assert profile is not None
    assert (profile.event_count, profile.session_count) == (3, 2)
