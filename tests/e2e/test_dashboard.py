"""The marketer's dashboard in headless Chromium against a live server with demo data: build a
funnel and a retention table through the UI, see the charts drawn, save, add to a dashboard,
reopen the share link, export CSV; a viewer can't edit; no email without the PII permission.

Screenshots (home, funnel, retention) go to the test's output directory, or to
CDP_SCREENSHOT_DIR (docs/images for the README's copies)."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection

from apps.insights.models import Dashboard, SavedInsight
from apps.profiles.models import Profile
from tests.factories import roles_ensure

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="Playwright is not installed: .venv/bin/pip install playwright",
)

# Screenshots go to the test's output directory; CDP_SCREENSHOT_DIR=docs/images refreshes the
# README's copies (`CDP_SCREENSHOT_DIR=docs/images .venv/bin/pytest tests/e2e/test_dashboard.py`).
SCREENSHOT_DIR = os.environ.get("CDP_SCREENSHOT_DIR", "")
TIMEOUT_MS = 20_000
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.example")
# True when the canvas (or SVG) inside the chart element has drawn something.
DRAWN = """(selector) => {
  const box = document.querySelector(selector);
  if (!box) return false;
  if (box.querySelector("svg path")) return true;
  const canvas = box.querySelector("canvas");
  if (!canvas || !canvas.width || !canvas.height) return false;
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) { if (data[i] !== 0) painted++; }
  return painted > 500;
}"""


@pytest.fixture
def server(live_server: Any) -> Iterator[str]:
    """The live server's URL. On SQLite (one shared in-memory database that refuses a second
    writer) requests take turns; on PostgreSQL they run concurrently."""
    if connection.vendor != "sqlite":
        yield live_server.url
        return
    lock = threading.Lock()
    httpd = live_server.thread.httpd
    app = httpd.get_app()

    def one_at_a_time(environ: Any, start_response: Any) -> Any:
        with lock:
            return app(environ, start_response)

    httpd.set_app(one_at_a_time)
    yield live_server.url
    httpd.set_app(app)


@pytest.fixture
def demo_size() -> int:
    return 40


@pytest.fixture
def people(transactional_db: None, settings: Any, demo_size: int) -> dict[str, Any]:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    roles_ensure()
    call_command("generate_demo_data", people=demo_size, days=21, seed=5, no_progress=True)
    from django.contrib.auth import get_user_model

    users = {}
    for name, role in (("marketer", "Marketer"), ("viewer", "Viewer"), ("boss", "Admin")):
        user = get_user_model().objects.create_user(username=name, password=f"pw-{name}")
        user.groups.add(Group.objects.get(name=role))
        users[name] = user
    return users


class Session:
    """A logged-in browser tab that records console errors."""

    def __init__(self, browser: Any, base: str, username: str, shots: Path) -> None:
        self.base = base
        self.shots = shots
        self.context = browser.new_context(viewport={"width": 1440, "height": 900})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"{base}/login/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", f"pw-{username}")
        self.page.click("button[type=submit]")
        self.page.wait_for_url(f"{base}/")

    def open(self, path: str) -> Any:
        self.page.goto(f"{self.base}{path}")
        return self.page

    def drawn(self, selector: str) -> None:
        self.page.wait_for_function(DRAWN, arg=selector)

    def shot(self, name: str) -> None:
        self.shots.mkdir(parents=True, exist_ok=True)
        self.page.evaluate("window.scrollTo(0, 0)")
        self.page.wait_for_timeout(600)  # the charts' entry animation
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=False)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    if SCREENSHOT_DIR:
        return Path(settings.BASE_DIR) / SCREENSHOT_DIR
    return tmp_path / "screenshots"


@contextlib.contextmanager
def session(browser: Any, base: str, username: str, shots: Path | None = None) -> Iterator[Session]:
    tab = Session(browser, base, username, shots or Path("."))
    try:
        yield tab
    finally:
        tab.close()


# Enough people for the README's screenshots to show a living product.
@pytest.mark.parametrize("demo_size", [160])
def test_marketer_builds_saves_shares_and_exports_insights(browser, server, people, shots):
    with session(browser, server, "marketer", shots) as tab:
        page = tab.page
        tab.drawn("#chart-active")
        assert page.locator("#stream li").count() > 0
        tab.shot("home")
        assert (shots / "home.png").stat().st_size > 10_000

        # A three-step funnel, built through the form.
        tab.open("/funnels/")
        steps = page.locator("#steps input[name=step]")
        steps.nth(0).fill("page_view")
        steps.nth(1).fill("signed_up")
        page.click("#add-step")
        page.locator("#steps input[name=step]").nth(2).fill("completed_onboarding")
        page.click("#builder button[type=submit]")
        tab.drawn("#chart-insight-chart")
        assert "step=completed_onboarding" in page.url  # the URL is the query
        tab.shot("funnel")
        rows = page.locator("#result table.data").first.locator("tbody tr")
        assert rows.count() == 3

        # Click a step's count: the people who converted, linked to their profiles.
        page.locator("a.people-link[data-step='1'][data-status='converted']").click()
        page.wait_for_selector("#people-list a[href^='/people/']")

        # Export the table.
        with page.expect_download() as download:
            page.click("text=Export CSV")
        content = Path(download.value.path()).read_text()
        assert content.startswith("Step,People,Conversion from first")
        assert "3. completed_onboarding" in content

        # Save it, make a dashboard, add the insight to it.
        page.fill("input[name=name]", "Signup funnel")
        page.click("#save-insight")
        page.wait_for_url(re.compile(r".*saved=\d+.*"))
        saved = SavedInsight.objects.get(name="Signup funnel")
        tab.open("/dashboards/")
        page.fill("#dash-name", "Growth")
        page.click("text=Create")
        page.wait_for_url(re.compile(r".*/dashboards/\d+/$"))
        tab.open(f"/saved/{saved.pk}/")
        page.select_option("select[name=dashboard]", label="Growth")
        page.click("#add-to-dashboard")
        page.wait_for_url(re.compile(r".*/dashboards/\d+/$"))
        dashboard = Dashboard.objects.get(name="Growth")
        item = dashboard.items.get()
        tab.drawn(f"#chart-tile-{item.pk}")

        # The share link restores the exact query.
        tab.open(f"/s/{saved.share_key}/")
        tab.drawn("#chart-insight-chart")
        values = page.locator("#steps input[name=step]").evaluate_all(
            "els => els.map(e => e.value)"
        )
        assert values == ["page_view", "signed_up", "completed_onboarding"]

        # A retention table, built through the form.
        tab.open("/retention/")
        page.fill("#start_event", "signed_up")
        page.fill("#return_event", "*")
        page.select_option("#period", "day")
        page.fill("#date_from", "-21d")
        page.click("#builder button[type=submit]")
        tab.drawn("#chart-insight-chart")
        assert page.locator("table.heat td.cell").count() > 0
        tab.shot("retention")
        page.locator("table.heat td.cell a").first.click()
        page.wait_for_selector("#people-list")

        # The table view of a chart.
        page.click(".chart-tabs button[data-view=table]")
        assert page.locator(".table-view").first.is_visible()

        # A trend whose filter doesn't parse: the reason shows next to the query.
        tab.open("/trends/")
        page.fill("#series input[name=event]", "page_view")
        page.fill("#filter", "event.properties.plan iz 3")
        page.click("#builder button[type=submit]")
        page.wait_for_selector("#query-error")
        assert "unknown operator" in page.inner_text("#query-error")
        page.fill("#filter", 'event.properties.path is "/pricing"')
        page.click("#builder button[type=submit]")
        tab.drawn("#chart-insight-chart")
        # Only the bad query's own 400 may be logged by the browser.
        assert [e for e in tab.errors if "400" not in e] == []


def test_a_viewer_sees_but_can_not_edit(browser, server, people):
    saved = SavedInsight.objects.create(
        name="Views", kind="trends", query={"series": [{"event": "page_view"}], "date_from": "-14d"}
    )
    dashboard = Dashboard.objects.create(name="Team")
    dashboard.items.create(insight=saved)
    with session(browser, server, "viewer") as tab:
        page = tab.open(f"/saved/{saved.pk}/")
        tab.drawn("#chart-insight-chart")
        assert page.locator("#save-insight").count() == 0
        assert page.locator("#add-to-dashboard").count() == 0
        page = tab.open(f"/dashboards/{dashboard.pk}/")
        tab.drawn(f"#chart-tile-{dashboard.items.get().pk}")
        assert page.locator("button[name=action]").count() == 0
        assert page.locator("text=New dashboard").count() == 0
        response = page.goto(f"{server}/segments/new/")
        assert response.status == 403
        assert tab.errors == [] or all("403" in e for e in tab.errors)


def test_a_user_without_the_pii_permission_never_sees_an_email(browser, server, people):
    person = Profile.objects.filter(identified=True, merged_into=None).first()
    email = person.private_traits["email"]
    with session(browser, server, "marketer") as tab:
        for path in ("/", "/people/", f"/people/{person.pk}/", "/live/"):
            tab.open(path)
            assert not EMAIL.search(tab.page.content()), path
    with session(browser, server, "boss") as tab:
        tab.open(f"/people/{person.pk}/")
        assert email in tab.page.content()
