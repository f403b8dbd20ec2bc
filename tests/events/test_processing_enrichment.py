"""Processing enriches what a visit came with: browser, OS and device from the user agent;
UTM campaign and referrer from the context or the page URL. What a marketer sees on the
session, and on each event of it through the management API."""

from __future__ import annotations

import pytest

from apps.events.models import Event, Session
from tests.events.processing_helpers import (
    CHROME_ANDROID,
    CHROME_WINDOWS,
    EDGE_MAC,
    FIREFOX_LINUX,
    GOOGLEBOT,
    SAFARI_IPAD,
    SAFARI_IPHONE,
    send,
    session_of,
    visit,
)

# --- device from the user agent -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "browser", "os", "device_type"),
    [
        (CHROME_WINDOWS, "Chrome", "Windows", "desktop"),
        (EDGE_MAC, "Edge", "Mac OS X", "desktop"),
        (FIREFOX_LINUX, "Firefox", "Linux", "desktop"),
        (SAFARI_IPHONE, "Mobile Safari", "iOS", "mobile"),
        (CHROME_ANDROID, "Chrome Mobile", "Android", "mobile"),
        (SAFARI_IPAD, "Mobile Safari", "iOS", "tablet"),
        (GOOGLEBOT, "Googlebot", "", "bot"),
    ],
)
def test_user_agent_in_the_context_gives_browser_os_and_device(
    tracker, user_agent, browser, os, device_type
):
    send(tracker, visit("landing", context={"user_agent": user_agent}))

    session = session_of("landing")
    assert (session.browser, session.os, session.device_type) == (browser, os, device_type)


def test_versions_brand_and_model_are_kept(tracker):
    send(tracker, visit("landing", context={"user_agent": CHROME_ANDROID}))

    session = session_of("landing")
    assert (session.browser_version, session.os_version) == ("124.0", "14")
    assert (session.device_brand, session.device_model) == ("Google", "Pixel 8")


def test_the_request_user_agent_is_used_when_the_context_has_none(tracker):
    """Server-side SDKs and sendBeacon: the HTTP User-Agent header is the visitor's browser."""
    send(tracker, visit("landing"), HTTP_USER_AGENT=SAFARI_IPHONE)

    session = session_of("landing")
    assert (session.browser, session.os, session.device_type) == ("Mobile Safari", "iOS", "mobile")


def test_the_context_user_agent_wins_over_the_request_header(tracker):
    """A server forwarding its visitors' events sends their user agent in the context."""
    send(
        tracker,
        visit("landing", context={"user_agent": FIREFOX_LINUX}),
        HTTP_USER_AGENT="python-requests/2.32",
    )

    assert session_of("landing").browser == "Firefox"


def test_segmentio_style_user_agent_key_is_read(tracker):
    send(tracker, visit("landing", context={"userAgent": CHROME_WINDOWS}))

    assert session_of("landing").browser == "Chrome"


@pytest.mark.parametrize("user_agent", ["", "☃ definitely not a browser", "x" * 5000])
def test_unknown_user_agents_leave_the_device_blank_and_processing_goes_on(tracker, user_agent):
    send(tracker, visit("landing", context={"user_agent": user_agent}), HTTP_USER_AGENT="")

    session = session_of("landing")
    assert (session.browser, session.os, session.device_type) == ("", "", "")


# --- UTM campaign ---------------------------------------------------------------------------


def test_utm_from_the_context_campaign(tracker):
    campaign = {
        "source": "newsletter",
        "medium": "email",
        "campaign": "spring_sale",
        "term": "shoes",
        "content": "header_link",
    }
    send(tracker, visit("landing", context={"campaign": campaign}))

    session = session_of("landing")
    assert (
        session.utm_source,
        session.utm_medium,
        session.utm_campaign,
        session.utm_term,
        session.utm_content,
    ) == ("newsletter", "email", "spring_sale", "shoes", "header_link")


def test_utm_campaign_name_as_segmentio_sends_it(tracker):
    send(tracker, visit("landing", context={"campaign": {"name": "black_friday", "source": "ads"}}))

    session = session_of("landing")
    assert (session.utm_source, session.utm_campaign) == ("ads", "black_friday")


def test_utm_from_the_page_url_query(tracker):
    url = (
        "https://shop.example/shoes?ref=x&utm_source=google&utm_medium=cpc"
        "&utm_campaign=brand%20search&utm_term=red+shoes&utm_content=ad_2"
    )
    send(tracker, visit("landing", context={"page": {"url": url}}))

    session = session_of("landing")
    assert (
        session.utm_source,
        session.utm_medium,
        session.utm_campaign,
        session.utm_term,
        session.utm_content,
    ) == ("google", "cpc", "brand search", "red shoes", "ad_2")
    assert session.landing_page == url


def test_the_context_campaign_wins_over_the_page_url(tracker):
    url = "https://shop.example/?utm_source=from_url&utm_campaign=from_url"
    send(
        tracker,
        visit("landing", context={"page": {"url": url}, "campaign": {"source": "from_context"}}),
    )

    session = session_of("landing")
    assert (session.utm_source, session.utm_campaign) == ("from_context", "")


def test_a_page_without_utm_parameters_has_no_campaign(tracker):
    send(tracker, visit("landing", context={"page": {"url": "https://shop.example/?q=utm"}}))

    session = session_of("landing")
    assert (session.utm_source, session.utm_campaign) == ("", "")


def test_a_page_given_as_a_plain_url_string(tracker):
    url = "https://shop.example/promo?utm_campaign=promo"
    send(tracker, visit("landing", context={"page": url}))

    session = session_of("landing")
    assert (session.landing_page, session.utm_campaign) == (url, "promo")


# --- referrer and landing page --------------------------------------------------------------


def test_referrer_from_the_page_context(tracker):
    send(
        tracker,
        visit(
            "landing",
            context={
                "page": {
                    "url": "https://shop.example/pricing",
                    "referrer": "https://www.google.com/search?q=shoes",
                }
            },
        ),
    )

    session = session_of("landing")
    assert session.referrer == "https://www.google.com/search?q=shoes"
    assert session.referring_domain == "www.google.com"
    assert session.landing_page == "https://shop.example/pricing"


def test_referrer_from_the_context(tracker):
    send(tracker, visit("landing", context={"referrer": "https://news.ycombinator.com/item?id=1"}))

    session = session_of("landing")
    assert session.referring_domain == "news.ycombinator.com"


def test_referrer_as_segmentio_sends_it(tracker):
    send(tracker, visit("landing", context={"referrer": {"url": "https://t.co/abc"}}))

    assert session_of("landing").referring_domain == "t.co"


@pytest.mark.parametrize("referrer", ["not a url", "http://[::1", 42, {"url": None}])
def test_a_garbled_referrer_is_kept_as_text_or_dropped_never_a_failure(tracker, referrer):
    send(tracker, visit("landing", context={"referrer": referrer}))

    session = session_of("landing")
    assert session.referring_domain == ""
    assert session.referrer in ("", referrer)


def test_a_direct_visit_has_no_referrer(tracker):
    send(tracker, visit("landing", context={"page": {"url": "https://shop.example/"}}))

    session = session_of("landing")
    assert (session.referrer, session.referring_domain) == ("", "")


def test_locale_and_timezone_are_kept_and_an_unknown_timezone_is_dropped(tracker):
    send(
        tracker,
        visit("a", "visitor-1", context={"locale": "pl-PL", "timezone": "Europe/Warsaw"}),
        visit("b", "visitor-2", context={"locale": "en-GB", "timezone": "Mars/Olympus_Mons"}),
    )

    assert (session_of("a").locale, session_of("a").timezone) == ("pl-PL", "Europe/Warsaw")
    assert (session_of("b").locale, session_of("b").timezone) == ("en-GB", "")


# --- what the events show -------------------------------------------------------------------


def test_stored_events_keep_their_context_as_sent(tracker):
    """Enrichment goes on the session: the event row stays the immutable fact it was."""
    context = {"page": {"url": "https://shop.example/?utm_source=x"}, "user_agent": EDGE_MAC}
    send(tracker, visit("landing", context=context))

    event = Event.objects.get()
    assert event.context["page"] == context["page"]
    assert event.context["user_agent"] == EDGE_MAC
    assert event.properties == {}


def test_events_show_the_enrichment_of_their_session_in_the_api(tracker, api_client):
    context = {
        "page": {
            "url": "https://shop.example/?utm_source=google&utm_campaign=brand",
            "referrer": "https://www.google.com/",
        },
        "user_agent": SAFARI_IPHONE,
    }
    send(tracker, visit("landing", context=context), visit("cart", minutes=2))

    rows = api_client.get("/api/v1/events").json()["results"]

    assert [row["event_name"] for row in rows] == ["cart", "landing"]
    for row in rows:
        session = row["session"]
        assert session["utm_source"] == "google"
        assert session["utm_campaign"] == "brand"
        assert session["referring_domain"] == "www.google.com"
        assert session["landing_page"] == context["page"]["url"]
        assert (session["browser"], session["os"], session["device_type"]) == (
            "Mobile Safari",
            "iOS",
            "mobile",
        )
    assert Session.objects.count() == 1
