"""RudderStack's browser SDK (analytics-js v3, the npm package's bundled build vendored under
static/vendor/rudderstack) in headless Chromium, with dataPlaneUrl and configUrl pointed here.

The site is another origin (a small HTTP server of this module on 127.0.0.1); the SDK and the
tracking API come from the live server (localhost). Every request the page makes is recorded,
and any to a third host is refused and reported: nothing may go to RudderStack's own servers.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection

from apps.events.models import Event
from apps.profiles.selectors import profile_get_for_distinct_id
from apps.sources import services as source_services
from apps.sources.models import EventSource

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="Playwright is not installed: .venv/bin/pip install playwright",
)

WAIT_SECONDS = 20
# Keeps a log of the page's beacons in sessionStorage, which outlives the page that sent them
# (request interception does not see beacons sent while a page unloads).
RECORD_BEACONS = """
(() => {
  const send = navigator.sendBeacon.bind(navigator);
  navigator.sendBeacon = (url, data) => {
    const sent = send(url, data);
    const log = JSON.parse(sessionStorage.getItem("beacons") || "[]");
    log.push({url: String(url), type: data && data.type, sent: sent});
    sessionStorage.setItem("beacons", JSON.stringify(log));
    return sent;
  };
})();
"""

# The page as RudderStack documents the SDK's use; `options` are the load options of the test.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{name}</title>
<script src="{api}/static/vendor/rudderstack/rsa.js"></script>
<script>
  window.rudder = new rudderanalytics.RudderAnalytics();
  rudder.load({write_key}, {api_json}, {options});
  rudder.ready(() => {{ window.rudderReady = true; }});
  rudder.page("Docs", {title});
</script>
</head><body><h1>{name}</h1><a id="next" href="/site/next">Next</a></body></html>"""


class SiteServer(ThreadingHTTPServer):
    daemon_threads = True
    api = ""
    write_key = ""
    options: dict[str, Any] = {}


class SitePage(BaseHTTPRequestHandler):
    server: SiteServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if not path.startswith("/site/"):
            self.send_error(404)
            return
        title = path.rsplit("/", 1)[-1] or "home"
        body = PAGE.format(
            name=title,
            title=json.dumps(title),
            api=self.server.api,
            api_json=json.dumps(self.server.api),
            write_key=json.dumps(self.server.write_key),
            options=json.dumps(self.server.options),
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site_server() -> Iterator[SiteServer]:
    server = SiteServer(("127.0.0.1", 0), SitePage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def db_lock(live_server: Any) -> Iterator[contextlib.AbstractContextManager[Any]]:
    """SQLite's in-memory test database refuses (rather than waits for) a writer while another
    connection is in a transaction: on SQLite, requests and the test's reads take turns."""
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


class Site:
    """A browser on the site, the requests it made, and the events its source stored."""

    def __init__(self, browser: Any, source: EventSource, api: str, origin: str, lock: Any):
        self.source, self.api, self.origin, self.lock = source, api, origin, lock
        self.context = browser.new_context()
        self.context.add_init_script(RECORD_BEACONS)
        self.requests: list[tuple[str, str]] = []
        self.elsewhere: list[str] = []
        self.console: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        self.page.on("pageerror", lambda error: self.console.append(f"error: {error}"))

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith((self.api, self.origin)):
            self.requests.append((route.request.method, url))
            route.continue_()
        else:
            self.elsewhere.append(url)
            route.abort()

    def paths(self, prefix: str) -> list[str]:
        return [urlsplit(url).path for _, url in self.requests if url.startswith(self.api + prefix)]

    def open(self, path: str) -> None:
        self.page.goto(f"{self.origin}{path}")
        try:
            self.page.wait_for_function("window.rudderReady === true", timeout=WAIT_SECONDS * 1000)
        except sync_api.TimeoutError:
            raise AssertionError(f"analytics-js did not start: {self.console}") from None

    def wait_until(self, done: Callable[[], Any], what: str) -> Any:
        deadline = time.monotonic() + WAIT_SECONDS
        while not (result := done()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; console: {self.console}")
            self.page.wait_for_timeout(100)
        return result

    def stored(self, count: int) -> list[Event]:
        def enough() -> list[Event] | None:
            with self.lock:
                events = list(Event.objects.filter(source=self.source).order_by("id"))
            done = len(events) >= count and all(e.processed_at for e in events)
            return events if done else None

        return self.wait_until(enough, f"{count} processed events")


@pytest.fixture
def open_site(
    browser: Any, live_server: Any, site_server: SiteServer, db_lock: Any
) -> Iterator[Callable[..., Site]]:
    sites: list[Site] = []
    origin = f"http://127.0.0.1:{site_server.server_address[1]}"

    def open_site(source: EventSource, write_key: str | None = None, **options: Any) -> Site:
        site_server.api = live_server.url
        site_server.write_key = write_key or source.write_key
        site_server.options = {
            "configUrl": live_server.url,
            "logLevel": "WARN",
            "polyfillIfRequired": False,
            **options,
        }
        site = Site(browser, source, live_server.url, origin, db_lock)
        sites.append(site)
        return site

    yield open_site
    for site in sites:
        site.context.close()
    # A request the closing pages sent (a beacon) must not meet the test database's teardown.
    time.sleep(0.5)
    with db_lock:
        pass


def test_page_track_identify_and_the_anonymous_id_kept_across_a_reload(open_site):
    source = source_services.source_create(name="Docs site")
    site = open_site(source)

    site.open("/site/home")
    anonymous_id = site.page.evaluate("rudder.getAnonymousId()")
    site.page.evaluate("rudder.track('Signed Up', {plan: 'pro'})")
    site.page.evaluate("rudder.identify('user-rs', {email: 'ada@example.com', plan: 'pro'})")
    site.stored(3)
    site.page.reload()
    site.page.wait_for_function("window.rudderReady === true", timeout=WAIT_SECONDS * 1000)
    reloaded_id = site.page.evaluate("rudder.getAnonymousId()")
    events = site.stored(4)

    assert site.elsewhere == []
    assert reloaded_id == anonymous_id
    assert site.paths("/sourceConfig") == ["/sourceConfig/", "/sourceConfig/"]
    names = [e.event_name for e in events]
    assert sorted(names) == ["$identify", "Signed Up", "page_view", "page_view"]
    assert len({e.message_id for e in events}) == 4
    first_page = next(e for e in events if e.event_name == "page_view")
    assert first_page.distinct_id == anonymous_id
    assert first_page.context["channel"] == "web"
    assert first_page.context["library"]["name"] == "RudderLabs JavaScript SDK"
    assert first_page.context["page"]["path"] == "/site/home"
    signed_up = next(e for e in events if e.event_name == "Signed Up")
    assert signed_up.properties == {"plan": "pro"}
    profile = profile_get_for_distinct_id("user-rs")
    assert profile is not None
    assert profile_get_for_distinct_id(anonymous_id) == profile
    assert profile.traits["plan"] == "pro"


def test_events_queued_for_the_beacon_arrive_once_when_the_page_is_left(open_site):
    source = source_services.source_create(name="Docs site")
    # A long flush interval: the events wait in the queue until the page is left.
    site = open_site(
        source, useBeacon=True, beaconQueueOptions={"flushQueueInterval": 600000, "maxItems": 50}
    )

    site.open("/site/home")
    site.page.evaluate("rudder.track('Read', {percent: 50})")
    site.page.evaluate("rudder.track('Read', {percent: 100})")
    site.page.wait_for_timeout(300)
    with site.lock:
        assert not Event.objects.filter(source=source).exists()
    site.page.click("#next")  # leaving the page flushes the queue with sendBeacon
    site.page.wait_for_function("window.rudderReady === true", timeout=WAIT_SECONDS * 1000)
    site.stored(3)
    beacons = json.loads(site.page.evaluate("sessionStorage.getItem('beacons') || '[]'"))
    site.page.goto("about:blank")  # leaving the second page sends its page view
    site.stored(4)
    site.page.wait_for_timeout(500)  # anything sent twice would have arrived by now
    with site.lock:
        events = list(Event.objects.filter(source=source).order_by("id"))

    assert site.elsewhere == []
    assert beacons, "no beacon was sent"
    for beacon in beacons:
        assert urlsplit(beacon["url"]).path == "/beacon/v1/batch"
        assert parse_qs(urlsplit(beacon["url"]).query)["writeKey"] == [source.write_key]
        assert beacon["type"] == "text/plain"
        assert beacon["sent"] is True
    names = sorted(e.event_name for e in events)
    assert names == ["Read", "Read", "page_view", "page_view"]
    assert sorted(e.properties["percent"] for e in events if e.event_name == "Read") == [50, 100]
    assert len({e.message_id for e in events}) == len(events)


def test_an_unknown_write_key_stops_the_sdk_after_one_config_request(open_site):
    source = source_services.source_create(name="Docs site")
    site = open_site(source, write_key="not-a-key")
    statuses: list[int] = []
    site.page.on(
        "response", lambda r: statuses.append(r.status) if "/sourceConfig" in r.url else None
    )

    site.page.goto(f"{site.origin}/site/home")
    site.page.evaluate("rudder.track('Lost', {})")
    site.page.wait_for_timeout(3000)  # long enough for retries, were there any

    assert site.elsewhere == []
    assert site.paths("/sourceConfig") == ["/sourceConfig/"]
    assert statuses == [401]
    assert site.paths("/v1/") == []
    assert site.paths("/beacon/") == []
    assert site.page.evaluate("window.rudderReady === true") is False
    assert not Event.objects.exists()
