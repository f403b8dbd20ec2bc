"""The visual workflow editor in headless Chromium (1280x800) against a live server: a workflow
built from an empty canvas by drag and drop and forms only, a validation error fixed on its
node, saved, published, tested with the trace drawn, reloaded; the editor in the admin; and
the round trip of every workflow in the tests and docs (opened and saved back unchanged,
positions aside).

Screenshots go to the test's output directory, or to CDP_SCREENSHOT_DIR (docs/img for the
README's copies: `CDP_SCREENSHOT_DIR=docs/img .venv/bin/pytest tests/e2e/test_workflow_editor.py`).
"""

from __future__ import annotations

import ast
import contextlib
import json
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
from apps.workflows.actions import Action, register
from apps.workflows.actions.registry import actions_reload
from apps.workflows.graph import graph_errors, graph_validate
from apps.workflows.models import Workflow, WorkflowRun
from tests.clients import TrackingClient
from tests.factories import chain, edge, node, source_make
from tests.users import user_with_perms

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="Playwright is not installed: .venv/bin/pip install playwright",
)

SCREENSHOT_DIR = os.environ.get("CDP_SCREENSHOT_DIR", "")
TIMEOUT_MS = 20_000
ALL_IN_VIEW = """() => {
  const canvas = document.querySelector(".wf-canvas").getBoundingClientRect();
  return [...document.querySelectorAll(".drawflow-node")].every((node) => {
    const r = node.getBoundingClientRect();
    return r.left >= canvas.left - 1 && r.right <= canvas.right + 1
      && r.top >= canvas.top - 1 && r.bottom <= canvas.bottom + 1;
  });
}"""
NO_INVALID_NODE = "document.querySelectorAll('.drawflow-node.wf-invalid').length === 0"
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
        self.page.on("pageerror", lambda e: self.errors.append(f"{e} {e.stack}"))

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


def test_keyboard_undo_copy_versions_and_recorded_runs(
    browser: Any, server: str, editor_user: Any, shots: Path
) -> None:
    graph = chain(node("tag", "set_trait", trait="plan", value="{{ event.properties.plan }}"))
    workflow = services.workflow_create(name="Tagging", graph=graph)
    services.workflow_publish(workflow=workflow)
    services.rule_create(name="sign-ups", workflow=workflow, event_name="signed_up")
    tracker = TrackingClient(Client(), source_make().write_key)
    tracker.post({"event_name": "signed_up", "distinct_id": "bob", "properties": {"plan": "team"}})
    run = WorkflowRun.objects.get(workflow=workflow)
    assert run.status == "succeeded"

    with tab(browser, server, editor_user) as t:
        page = t.open_editor(f"/workflows/{workflow.pk}/")
        # Tab through the canvas to a node; Enter opens its settings.
        page.locator(".wf-canvas").focus()
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.dataset.nid") == "start"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.value") == "start"  # its id field

        # A palette item by keyboard: Enter adds it and focuses the node.
        page.locator(".wf-palette-item[data-action='log']").focus()
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.dataset.nid") == "log"
        before = {n["id"]: n["position"] for n in t.editor_graph()["nodes"]}["log"]
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        after = {n["id"]: n["position"] for n in t.editor_graph()["nodes"]}["log"]
        assert after == {"x": before["x"] + 30, "y": before["y"]}

        # Copy, paste, delete, undo, redo.
        page.keyboard.press("Control+c")
        page.keyboard.press("Control+v")
        node_at(page, "log_2").wait_for()
        assert page.evaluate("document.activeElement.dataset.nid") == "log_2"
        page.keyboard.press("Delete")
        node_at(page, "log_2").wait_for(state="detached")
        page.locator(".wf-canvas").focus()
        page.keyboard.press("Control+z")
        node_at(page, "log_2").wait_for()
        page.keyboard.press("Control+y")
        node_at(page, "log_2").wait_for(state="detached")

        # Connect by keyboard, fill the form, save.
        node_at(page, "tag").focus()
        row = page.locator(".wf-connections .wf-port-row[data-port='out']")
        row.locator("select").select_option("log")
        row.locator("button", has_text="Connect").press("Enter")
        node_at(page, "log").click()
        field(page, "message").locator("textarea").fill("plan {{ event.properties.plan }}")
        field(page, "level").locator("select").select_option(label="info")
        page.wait_for_function(NO_INVALID_NODE)
        page.click("[data-cmd=save]")
        status_is(page, "Draft saved")

        # The draft against the published version.
        page.click("[data-tab=versions]")
        page.click("[data-panel=versions] button:has-text('Compare')")
        page.locator(".wf-diff .wf-added li", has_text="log").first.wait_for()
        assert page.locator(".wf-diff .wf-added li", has_text="tag (out) → log").count() == 1
        assert "wf-diff-added" in node_at(page, "log").get_attribute("class")

        # Restore v1: the draft becomes a copy of it again.
        page.click("[data-version='1'] button:has-text('Restore…')")
        page.click("[data-version='1'] button:has-text('Restore v1')")
        status_is(page, "v1 is published again")
        node_at(page, "log").wait_for(state="detached")
        workflow.refresh_from_db()
        assert workflow.graph == graph

        # A recorded run: its trace drawn on the canvas, then replayed.
        page.click("[data-tab=runs]")
        page.click(f"[data-run='{run.pk}']")
        page.locator(".wf-run-detail .wf-status-succeeded").wait_for()
        for nid in ("start", "tag"):
            assert "wf-ran" in node_at(page, nid).get_attribute("class")
        page.click(".wf-run-detail button:has-text('Replay')")
        page.wait_for_function("document.querySelectorAll('.drawflow-node.wf-ran').length === 2")
        node_at(page, "tag").click()
        assert '"team"' in page.locator(".wf-node-trace").inner_text()

        # Zoom.
        page.click("[data-cmd=zoom-in]")
        assert page.locator("[data-cmd=zoom-reset]").inner_text() == "110%"
        assert t.errors == []


def test_a_failing_node_is_drawn_in_red_with_its_error(
    browser: Any, server: str, editor_user: Any
) -> None:
    graph = chain(
        node("tag", "set_trait", trait="seen", value=True),
        node("join", "add_to_segment", segment="no-such-segment"),
        node("done", "end"),
    )
    workflow = services.workflow_create(name="Failing", graph=graph)
    with tab(browser, server, editor_user) as t:
        page = t.open_editor(f"/workflows/{workflow.pk}/")
        page.click("[data-tab=test]")
        # The event as written in the form (the default one), as a new person.
        page.click("[data-panel=test] button:has-text('Run test')")
        page.locator(".wf-test-result .wf-status-failed").wait_for()
        assert "wf-failed" in node_at(page, "join").get_attribute("class")
        assert "wf-ran" in node_at(page, "tag").get_attribute("class")
        assert "wf-skipped" in node_at(page, "done").get_attribute("class")
        assert "no-such-segment" in page.locator(".wf-test-result .wf-error").inner_text()
        assert page.locator(".wf-trace-list li.wf-trace-error").count() == 1
        node_at(page, "join").click()
        assert "no-such-segment" in page.locator(".wf-node-trace .wf-error").inner_text()
        assert t.errors == []


def test_the_admin_page_edits_with_the_same_editor(
    browser: Any, server: str, editor_user: Any
) -> None:
    workflow = services.workflow_create(name="In the admin")
    with tab(browser, server, editor_user) as t:
        page = t.open_editor(f"/admin/workflows/workflow/{workflow.pk}/change/")
        drop(page, "end", 120, 200)
        wire(page, "start", "out", "end")
        page.wait_for_function(
            "JSON.parse(document.getElementById('id_graph').value).edges.length === 1"
        )
        assert t.errors == []
        page.click("input[name=_save]")
        page.wait_for_url(re.compile(r".*/admin/workflows/workflow/$"))
        workflow.refresh_from_db()
        assert [n["action"] for n in workflow.graph["nodes"]] == ["start", "end"]
        assert workflow.graph["edges"] == [{"from": "start", "port": "out", "to": "end"}]


HOSTILE = '<img src=x onerror="window.hacked=1">'


def test_a_node_whose_action_is_gone_still_opens_marked_and_escaped(
    browser: Any, server: str, editor_user: Any
) -> None:
    class Gone(Action):
        name = HOSTILE
        ports = ("out", "odd port")

    register(Gone)
    workflow = services.workflow_create(
        name="Plugin removed",
        graph={
            "nodes": [node("start", "start"), node("old", HOSTILE), node("done", "end")],
            "edges": [edge("start", "old"), edge("old", "done", "odd port")],
        },
    )
    actions_reload()  # the plugin is uninstalled
    with tab(browser, server, editor_user) as t:
        page = t.open_editor(f"/workflows/{workflow.pk}/")
        old = node_at(page, "old")
        assert "wf-unknown" in old.get_attribute("class")
        assert HOSTILE in old.locator(".wf-node-sub").inner_text()  # shown as text
        assert old.locator(".output[data-port='odd port']").count() == 1
        page.wait_for_function(
            "document.querySelector(\".drawflow-node[data-nid='old']\")"
            ".classList.contains('wf-invalid')"
        )
        assert "unknown action" in old.locator(".wf-node-badge").get_attribute("title")
        assert page.evaluate("window.hacked") is None
        assert page.locator(".drawflow .connection").count() == 2
        assert t.errors == []


def test_a_viewer_sees_the_graph_and_cannot_change_it(browser: Any, server: str) -> None:
    workflow = services.workflow_create(
        name="Read only", graph=chain(node("tag", "set_trait", trait="a", value=1))
    )
    viewer = user_with_perms("workflows.view_workflow", staff=False)
    with tab(browser, server, viewer) as t:
        page = t.open_editor(f"/workflows/{workflow.pk}/")
        assert page.locator(".drawflow-node").count() == 2
        for hidden in ("[data-cmd=save]", "[data-cmd=publish]", ".wf-palette", "[data-tab=test]"):
            assert not page.locator(hidden).is_visible(), hidden
        node_at(page, "tag").click()
        assert page.locator("[data-panel=settings] input").first.is_disabled()
        box = node_at(page, "tag").bounding_box()
        page.mouse.move(box["x"] + 40, box["y"] + 20)
        page.mouse.down()
        page.mouse.move(box["x"] + 240, box["y"] + 220, steps=5)
        page.mouse.up()
        assert node_at(page, "tag").bounding_box()["x"] == box["x"]
        assert t.errors == []


# --- the round trip: every workflow of the tests and the docs ------------------------------------


def _module_names(tree: ast.Module, base: dict[str, Any]) -> dict[str, Any]:
    """A test module's constants (graphs built from tests/factories.py helpers)."""
    names = dict(base)
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target = statement.targets[0]
            if isinstance(target, ast.Name):
                with contextlib.suppress(Exception):
                    names[target.id] = _evaluate(statement.value, names)
    return names


def _evaluate(expression: ast.expr, names: dict[str, Any]) -> Any:
    code = compile(ast.Expression(expression), "<graph>", "eval")
    return eval(code, {"__builtins__": {}}, dict(names))


def workflow_corpus() -> list[tuple[str, dict[str, Any]]]:
    """Every valid workflow graph written in the tests (dict literals with nodes and edges,
    and chain(...) calls, evaluated with tests/factories.py's helpers) and in the docs (JSON
    blocks), once each. Invalid graphs there are inputs of validation tests, not workflows."""
    import tests.factories as factories

    found: dict[str, tuple[str, dict[str, Any]]] = {}

    def keep(where: str, graph: Any) -> None:
        if isinstance(graph, dict) and not graph_errors(graph):
            found.setdefault(json.dumps(graph, sort_keys=True), (where, graph))

    for path in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = _module_names(tree, vars(factories))
        for expr in ast.walk(tree):
            literal = isinstance(expr, ast.Dict) and {"nodes", "edges"} <= {
                k.value for k in expr.keys if isinstance(k, ast.Constant)
            }
            chained = (
                isinstance(expr, ast.Call)
                and isinstance(expr.func, ast.Name)
                and expr.func.id == "chain"
            )
            if literal or chained:
                with contextlib.suppress(Exception):  # uses a test's local variables
                    keep(f"{path.relative_to(ROOT)}:{expr.lineno}", _evaluate(expr, names))
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```json\n(.*?)```", doc.read_text(), re.DOTALL):
            with contextlib.suppress(ValueError):
                value = json.loads(block)
                keep(str(doc.relative_to(ROOT)), value.get("graph", value))
    return list(found.values())


def without_positions(graph: dict[str, Any]) -> dict[str, Any]:
    nodes = [{k: v for k, v in n.items() if k != "position"} for n in graph["nodes"]]
    return {**graph, "nodes": nodes}


def test_the_corpus_covers_the_tests_and_the_docs() -> None:
    corpus = workflow_corpus()
    assert len(corpus) >= 50
    assert any(where.startswith("docs/") for where, _ in corpus)
    actions = {n["action"] for _, graph in corpus for n in graph["nodes"]}
    assert {"condition", "http_request", "set_trait", "delay", "emit_event"} <= actions


def test_every_workflow_of_the_tests_and_docs_opens_and_saves_back_unchanged(
    browser: Any, server: str, editor_user: Any
) -> None:
    corpus = workflow_corpus()
    workflows = [
        (where, graph, services.workflow_create(name=f"round trip {i}", graph=graph))
        for i, (where, graph) in enumerate(corpus)
    ]
    changed = []
    with tab(browser, server, editor_user) as t:
        for where, graph, workflow in workflows:
            page = t.open_editor(f"/workflows/{workflow.pk}/")
            assert page.locator(".drawflow-node").count() == len(graph["nodes"]), where
            # Opened fitted to the view (unless that needs less than the smallest zoom).
            if page.locator("[data-cmd=zoom-reset]").inner_text() != "30%":
                assert page.evaluate(ALL_IN_VIEW), where
            with page.expect_response(lambda r: r.request.method == "PATCH") as answer:
                page.click("[data-cmd=save]")
            assert answer.value.status == 200, (where, answer.value.text())
            status_is(page, "Draft saved")
            workflow.refresh_from_db()
            if without_positions(workflow.graph) != graph:
                changed.append(where)
            assert all(readable_position(n) for n in workflow.graph["nodes"]), where
            # Laid out automatically (the graphs have no positions): no two nodes in one place.
            places = {(n["position"]["x"], n["position"]["y"]) for n in workflow.graph["nodes"]}
            assert len(places) == len(graph["nodes"]), where
        assert t.errors == []
    assert not changed, f"changed by the editor: {changed}"


def readable_position(node: dict[str, Any]) -> bool:
    position = node.get("position")
    return isinstance(position, dict) and {type(position["x"]), type(position["y"])} == {int}
