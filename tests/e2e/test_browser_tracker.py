"""The browser tracker (static/cdp.js) in headless Chromium against a live server.

The shop is another site: a small HTTP server of this module, on http://127.0.0.1:PORT (no test
URLs in the project), whose pages carry the snippet from the source's admin page. cdp.js and
the tracking API come from the live server at http://localhost:PORT2, a different origin, so
CORS and the source's allowed origins are exercised as on a real site.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connection

from apps.events.models import Event, Session
from apps.profiles.models import OperationReceipt
from apps.profiles.selectors import profile_get_for_distinct_id
from apps.sources import services as source_services
from apps.sources.models import EventSource
from apps.sources.snippet import tracker_snippet

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="Playwright is not installed: .venv/bin/pip install playwright",
)

WAIT_SECONDS = 20
# Keeps a log of the page's beacons in sessionStorage, which outlives the page that sent them.
RECORD_BEACONS = """
(() => {
  const send = navigator.sendBeacon.bind(navigator);
  navigator.sendBeacon = (url, data) => {
    const sent = send(url, data);
    const log = JSON.parse(sessionStorage.getItem("beacons") || "[]");
    log.push({url: url, data: String(data), sent: sent});
    sessionStorage.setItem("beacons", JSON.stringify(log));
    return sent;
  };
})();
"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
{snippet}
</head><body>
<h1>{title}</h1>
<button id="buy" class="btn btn-primary" type="button">
    Buy   now
</button>
<a id="checkout" href="/shop/checkout">Checkout</a>
<div style="height: 4000px">A long product description.</div>
<footer>The end</footer>
</body></html>"""


class ShopServer(ThreadingHTTPServer):
    """The website being tracked: every /shop/ page carries the current snippet."""

    daemon_threads = True
    snippet = ""


class ShopPage(BaseHTTPRequestHandler):
    server: ShopServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if not path.startswith("/shop/"):
            self.send_error(404)
            return
        title = "Checkout" if path == "/shop/checkout" else "Shop"
        body = PAGE.format(title=title, snippet=self.server.snippet).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def shop_server() -> Iterator[ShopServer]:
    server = ShopServer(("127.0.0.1", 0), ShopPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def page_origin(shop_server: ShopServer) -> str:
    return f"http://127.0.0.1:{shop_server.server_address[1]}"


class Shop:
    """A browser tab on the shop, the requests it made to the tracking API, and the events
    its source stored."""

    def __init__(
        self,
        browser: Any,
        source: EventSource,
        api_url: str,
        origin: str,
        db_lock: contextlib.AbstractContextManager[Any],
    ) -> None:
        self.source = source
        self.origin = origin
        self.api_url = api_url
        self.db_lock = db_lock
        self.context = browser.new_context(locale="en-GB", timezone_id="Europe/Paris")
        self.context.add_init_script(RECORD_BEACONS)
        self.api_requests: list[Any] = []
        self.api_responses: list[Any] = []
        self.context.on("request", self._on_request)
        self.context.on("response", self._on_response)
        self.page = self.context.new_page()
        self.console: list[str] = []  # shown when the tracker doesn't load
        self.page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        self.page.on("pageerror", lambda error: self.console.append(f"error: {error}"))
        self.context.on(
            "requestfailed", lambda r: self.console.append(f"failed: {r.url} {r.failure}")
        )

    def _on_request(self, request: Any) -> None:
        if request.url.startswith(f"{self.api_url}/api/"):
            self.api_requests.append(request)

    def _on_response(self, response: Any) -> None:
        if response.url.startswith(f"{self.api_url}/api/"):
            self.api_responses.append(response)

    def open(self, path: str, **kwargs: Any) -> None:
        self.page.goto(f"{self.origin}{path}", **kwargs)
        self.wait_for_tracker()

    def wait_for_tracker(self) -> None:
        try:
            self.page.wait_for_function(
                "window.cdp && window.cdp.__loaded === true", timeout=WAIT_SECONDS * 1000
            )
        except sync_api.TimeoutError:
            raise AssertionError(f"cdp.js did not load: {self.console}") from None

    def scroll_to_bottom(self) -> None:
        for _ in range(6):
            self.page.mouse.wheel(0, 800)
        self.page.wait_for_function(
            "window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 2"
        )
        # The tracker measures on the next animation frame.
        self.page.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r)))")

    def beacons(self) -> list[dict[str, Any]]:
        return json.loads(self.page.evaluate("sessionStorage.getItem('beacons') || '[]'"))

    def storage(self) -> dict[str, str]:
        return self.page.evaluate(
            "Object.fromEntries(Object.keys(localStorage)"
            ".filter(k => k.startsWith('cdp_')).map(k => [k, localStorage.getItem(k)]))"
        )

    def wait_until(self, done: Callable[[], Any], what: str) -> Any:
        """Poll `done` until it is true. Waiting through the page lets Playwright run its
        handlers (request routes, events) meanwhile, as time.sleep would not."""
        deadline = time.monotonic() + WAIT_SECONDS
        while not (result := done()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; console: {self.console}")
            self.page.wait_for_timeout(100)
        return result

    def stored_events(self, count: int) -> list[Event]:
        """The source's events, once `count` of them are stored and processed."""
        seen: list[str] = []

        def all_processed() -> list[Event] | None:
            with self.db_lock:
                events = list(Event.objects.filter(source=self.source).order_by("timestamp", "id"))
            seen[:] = [e.event_name for e in events]
            return events if len(events) >= count and all(e.processed_at for e in events) else None

        try:
            return self.wait_until(all_processed, f"{count} processed events")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; stored: {seen}") from None

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def db_lock(live_server: Any) -> Iterator[contextlib.AbstractContextManager[Any]]:
    """SQLite's in-memory test database is one shared cache that refuses (rather than waits
    for) a writer while another connection is in a transaction, and the live server gives
    each request thread its own connection: overlapping requests (a beacon beside a fetch)
    would fail with "database table is locked". On SQLite, requests and the test's own reads
    take turns; on PostgreSQL they run concurrently, as in production."""
    if connection.vendor != "sqlite":
        yield contextlib.nullcontext()
        return
    lock = threading.Lock()
    httpd = live_server.thread.httpd
    app = httpd.get_app()

    def one_at_a_time(environ: Any, start_response: Any) -> Any:
        with lock:
            return app(environ, start_response)

    httpd.set_app(one_at_a_time)
    yield lock
    httpd.set_app(app)


@pytest.fixture
def open_shop(
    browser: Any,
    live_server: Any,
    shop_server: ShopServer,
    page_origin: str,
    db_lock: contextlib.AbstractContextManager[Any],
) -> Iterator[Callable[..., Shop]]:
    """A new browser (empty storage) on the shop, whose pages carry this source's snippet."""
    shops: list[Shop] = []

    def open_shop(source: EventSource) -> Shop:
        shop_server.snippet = tracker_snippet(source, live_server.url)
        shop = Shop(browser, source, live_server.url, page_origin, db_lock)
        shops.append(shop)
        return shop

    yield open_shop
    for shop in shops:
        shop.close()


def test_tracker_records_a_visit_with_auto_events_identify_and_navigation(
    open_shop: Callable[..., Shop], page_origin: str
) -> None:
    source = source_services.source_create(name="Shop", allowed_origins=[page_origin])
    shop = open_shop(source)
    page = shop.page
    landing = f"{page_origin}/shop/?utm_source=newsletter&utm_medium=email&utm_campaign=spring-sale"

    shop.open(
        "/shop/?utm_source=newsletter&utm_medium=email&utm_campaign=spring-sale",
        referer="https://news.example.com/",
    )
    anonymous_id = page.evaluate("cdp.anonymousId()")
    session_key = page.evaluate("cdp.sessionId()")
    page.click("#buy")
    shop.scroll_to_bottom()
    page.mouse.wheel(0, -4000)  # scrolling up and down again adds no milestone
    shop.scroll_to_bottom()
    page.evaluate("history.pushState({}, '', '/shop/product/42'); document.title = 'Product 42'")
    page.evaluate("new Promise(r => setTimeout(r))")  # the tracker sees it on the next task
    # Deliver the visit's start before going on: the server takes a session's attribution
    # from the first event it processes (see docs/tracker.md, "Known limits").
    page.evaluate("cdp.flush()")
    shop.stored_events(7)
    page.evaluate("cdp.identify('user-42', {email: 'ada@example.com', plan: 'pro'})")
    with page.expect_navigation():
        page.click("#checkout")  # a real navigation: the click leaves in a beacon
    shop.wait_for_tracker()
    page.evaluate("cdp.track('order_completed', {total: 42})")
    user_agent = page.evaluate("navigator.userAgent")

    events = shop.stored_events(11)
    stored_anonymous_id = shop.storage()["cdp_anonymous_id"]
    assert page.evaluate("cdp.anonymousId()") == anonymous_id == stored_anonymous_id
    assert page.evaluate("cdp.userId()") == "user-42"
    statuses = {r.status for r in shop.api_responses}
    origins = {r.request.header_value("origin") for r in shop.api_responses}
    beacons = shop.beacons()
    shop.close()  # the browser is done: nothing more arrives while the test reads

    # Timestamps are corrected for each request's transit time, so events from different
    # requests may swap places: tell them apart by what they carry, not by their order.
    by_name: dict[str, list[Event]] = {}
    for event in events:
        by_name.setdefault(event.event_name, []).append(event)
    views = {e.context["page"]["path"]: e for e in by_name["page_view"]}
    clicks = {e.properties["element_id"]: e for e in by_name["element_click"]}
    assert sorted((name, len(found)) for name, found in by_name.items()) == [
        ("$identify", 1),
        ("element_click", 2),
        ("order_completed", 1),
        ("page_scroll", 4),
        ("page_view", 3),
    ]
    assert len({e.message_id for e in events}) == 11

    # Who: the anonymous id until identify, the user id after it.
    before = [views["/shop/"], views["/shop/product/42"], clicks["buy"], *by_name["page_scroll"]]
    after = [views["/shop/checkout"], clicks["checkout"], by_name["order_completed"][0]]
    assert {e.distinct_id for e in before} == {anonymous_id}
    assert {e.distinct_id for e in after} == {"user-42"}
    identify = by_name["$identify"][0]
    assert identify.distinct_id == "user-42"
    assert identify.properties["$anonymous_id"] == anonymous_id
    assert identify.properties["$set"] == {"email": "ada@example.com", "plan": "pro"}

    # Page views: the landing page with its campaign and referrer, the single-page-app
    # navigation, and the real navigation with the previous page as referrer.
    landing_view, spa_view = views["/shop/"], views["/shop/product/42"]
    checkout_view = views["/shop/checkout"]
    ctx = landing_view.context
    assert ctx["page"]["url"] == landing
    assert ctx["page"]["path"] == "/shop/"
    assert ctx["page"]["title"] == "Shop"
    assert ctx["page"]["referrer"] == "https://news.example.com/"
    assert ctx["campaign"] == {"source": "newsletter", "medium": "email", "campaign": "spring-sale"}
    assert ctx["user_agent"] == user_agent
    assert "HeadlessChrome" in user_agent
    assert ctx["locale"] == "en-GB"
    assert ctx["timezone"] == "Europe/Paris"
    assert ctx["screen"]["width"] > 0
    assert ctx["library"]["name"] == "cdp.js"
    assert landing_view.category == "page"

    assert spa_view.context["page"]["path"] == "/shop/product/42"
    assert spa_view.context["page"]["title"] == "Product 42"
    assert spa_view.context["page"]["referrer"] == landing

    checkout = checkout_view.context
    assert checkout["page"]["url"] == f"{page_origin}/shop/checkout"
    assert checkout["page"]["referrer"] == f"{page_origin}/shop/product/42"
    assert checkout["landing_page"] == landing  # the visit's attribution travels with it
    assert checkout["campaign"]["campaign"] == "spring-sale"
    assert checkout["referrer"] == {"url": "https://news.example.com/"}

    # Clicks: what was clicked, trimmed text, no form values.
    button, link = clicks["buy"], clicks["checkout"]
    assert button.properties == {
        "element_tag": "button",
        "element_text": "Buy now",
        "element_id": "buy",
        "element_classes": ["btn", "btn-primary"],
    }
    assert link.properties["element_tag"] == "a"
    assert link.properties["element_text"] == "Checkout"
    assert link.properties["element_href"] == f"{page_origin}/shop/checkout"
    assert link.context["page"]["path"] == "/shop/product/42"

    assert sorted(e.properties["depth"] for e in by_name["page_scroll"]) == [25, 50, 75, 100]
    assert by_name["order_completed"][0].properties == {"total": 42}

    # One visit: every event carries the same client session id and lands in one session,
    # which keeps where the visit came from.
    session = Session.objects.get(source=source, key=session_key)
    tracked = [e for e in events if e.event_name != "$identify"]
    assert {e.session_key for e in tracked} == {session_key}
    assert {e.session_id for e in tracked} == {session.id}
    if identify.session_key:  # once /api/identify passes session_id on (see docs/tracker.md)
        assert identify.session_id == session.id
    assert session.utm_campaign == "spring-sale"
    assert session.utm_source == "newsletter"
    assert session.referring_domain == "news.example.com"
    assert session.landing_page == landing
    assert session.device_type == "desktop"

    # identify linked the anonymous visitor to the user: one profile for both ids.
    profile = profile_get_for_distinct_id("user-42")
    assert profile is not None
    assert profile_get_for_distinct_id(anonymous_id) == profile
    assert profile.traits["plan"] == "pro"
    assert profile.private_traits["email"] == "ada@example.com"  # PII is kept apart
    assert profile.identified

    # Cross-origin and accepted.
    assert statuses == {200}
    assert origins == {page_origin}
    # What was still queued when the page was left went out in beacons (with the write key in
    # the body: a beacon has no headers), the click on the link among them.
    assert beacons
    assert all(b["sent"] for b in beacons)
    assert all(json.loads(b["data"])["writeKey"] == source.write_key for b in beacons)
    beaconed = [
        e["message_id"]
        for b in beacons
        if b["url"] == f"{shop.api_url}/api/track"
        for e in json.loads(b["data"])["batch"]
    ]
    assert link.message_id in beaconed


def test_nothing_is_sent_or_stored_until_the_visitor_consents(
    open_shop: Callable[..., Shop], page_origin: str
) -> None:
    source = source_services.source_create(
        name="Consent shop", allowed_origins=[page_origin], requires_consent=True
    )
    shop = open_shop(source)
    page = shop.page

    shop.open("/shop/")
    page.click("#buy")
    shop.scroll_to_bottom()
    page.evaluate("cdp.flush()")
    page.wait_for_timeout(2500)  # longer than the flush interval

    assert shop.api_requests == []
    assert Event.objects.filter(source=source).count() == 0
    assert shop.storage() == {}  # not even an id is written to the device before consent
    anonymous_id = page.evaluate("cdp.anonymousId()")

    page.evaluate("cdp.consent(true)")
    events = shop.stored_events(6)

    assert [e.event_name for e in events] == ["page_view", "element_click", *["page_scroll"] * 4]
    assert {e.distinct_id for e in events} == {anonymous_id}
    assert shop.storage()["cdp_anonymous_id"] == anonymous_id
    assert shop.storage()["cdp_consent"] == "granted"

    # The decision is remembered: the next page sends at once, as the same visitor.
    with page.expect_navigation():
        page.click("#checkout")
    shop.wait_for_tracker()
    events = shop.stored_events(8)  # the click on the link, the checkout page view
    assert {e.distinct_id for e in events} == {anonymous_id}
    assert len({e.session_key for e in events}) == 1


def test_failed_deliveries_are_retried_with_the_same_message_ids(
    open_shop: Callable[..., Shop], page_origin: str, live_server: Any
) -> None:
    """A 503 (after the server stored the batch) and a network error are both retried; the
    retries carry the same message ids, so the events are stored exactly once."""
    source = source_services.source_create(name="Flaky shop", allowed_origins=[page_origin])
    shop = open_shop(source)
    bodies: list[dict[str, Any]] = []

    def flaky(route: Any) -> None:
        bodies.append(json.loads(route.request.post_data))
        if len(bodies) == 1:
            route.fetch()  # delivered and stored, but the answer is lost behind a 503
            route.fulfill(status=503, body="upstream unavailable")
        elif len(bodies) == 2:
            route.abort("connectionreset")
        else:
            route.continue_()

    shop.context.route(f"{live_server.url}/api/track", flaky)
    shop.open("/shop/")
    shop.page.click("#buy")

    shop.wait_until(lambda: len(bodies) >= 3, "two retries")
    events = shop.stored_events(2)
    shop.page.wait_for_timeout(300)  # no fourth attempt

    assert [e.event_name for e in events] == ["page_view", "element_click"]
    assert Event.objects.filter(source=source).count() == 2
    assert len(bodies) == 3
    ids = [[e["message_id"] for e in body["batch"]] for body in bodies]
    assert ids[0] == ids[1] == ids[2]
    assert {e.message_id for e in events} == set(ids[0])
    assert bodies[0]["writeKey"] == source.write_key


def test_a_group_call_whose_answer_was_lost_is_retried_and_applied_once(
    open_shop: Callable[..., Shop], page_origin: str, live_server: Any
) -> None:
    """The group call is applied, then its answer lost behind a 503: the retry carries the same
    message id, so the server answers it as a duplicate and records the call once."""
    source = source_services.source_create(name="Group shop", allowed_origins=[page_origin])
    shop = open_shop(source)
    bodies: list[dict[str, Any]] = []
    answers: list[dict[str, Any]] = []

    def flaky(route: Any) -> None:
        bodies.append(json.loads(route.request.post_data))
        response = route.fetch()
        answers.append(response.json())
        if len(bodies) == 1:
            route.fulfill(status=503, body="upstream unavailable")
        else:
            route.fulfill(response=response)

    shop.context.route(f"{live_server.url}/api/groups", flaky)
    shop.open("/shop/")
    shop.page.evaluate("cdp.group('company', 'acme')")

    shop.wait_until(lambda: len(answers) >= 2, "one retry")
    shop.page.wait_for_timeout(300)  # no third attempt

    assert len(bodies) == 2
    assert bodies[0]["message_id"] == bodies[1]["message_id"]
    assert [a["duplicates"] for a in answers] == [0, 1]
    with shop.db_lock:
        receipts = list(OperationReceipt.objects.filter(source=source))
        profile = profile_get_for_distinct_id(bodies[0]["distinct_id"])
        assert profile is not None
        assert [m.group.group_id for m in profile.memberships.select_related("group")] == ["acme"]
    assert [r.message_id for r in receipts] == [bodies[0]["message_id"]]


def test_per_type_consent_is_stored_before_the_calls_it_releases(
    open_shop: Callable[..., Shop], page_origin: str
) -> None:
    """cdp.consent({...}) on a source that requires consent: the decision reaches the server
    first (POST /api/consent), so the held events that follow are stored, not dropped."""
    from apps.consents.models import ConsentChange, ConsentType

    ConsentType.objects.create(key="analytics", name="Analytics", required=True)
    ConsentType.objects.create(key="marketing", name="Marketing")
    source = source_services.source_create(
        name="Consent types shop", allowed_origins=[page_origin], requires_consent=True
    )
    shop = open_shop(source)
    page = shop.page
    shop.open("/shop/")
    page.click("#buy")
    page.wait_for_timeout(500)
    assert shop.api_requests == []

    page.evaluate("cdp.consent({analytics: true, marketing: false})")
    events = shop.stored_events(2)
    anonymous_id = page.evaluate("cdp.anonymousId()")

    assert [e.event_name for e in events][:2] == ["page_view", "element_click"]
    assert {e.distinct_id for e in events} == {anonymous_id}
    assert shop.api_requests[0].url.endswith("/api/consent")
    with shop.db_lock:
        changes = {
            (c.consent_type.key, c.granted, c.channel)
            for c in ConsentChange.objects.select_related("consent_type")
        }
    assert changes == {("analytics", True, "tracker"), ("marketing", False, "tracker")}
