"""The workflows admin: the graph as a picture, the JSON editor with inline errors, publish,
restore, export, import, the test form, rules, runs with their traces, the actions page."""

from __future__ import annotations

import html
import json
import re
from importlib.metadata import EntryPoint
from typing import Any, ClassVar

import pytest
from django.contrib.admin.models import LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.events.models import Event
from apps.workflows import services
from apps.workflows.actions import Action, Fire
from apps.workflows.actions import registry as action_registry
from apps.workflows.admin import runs as run_admin
from apps.workflows.models import Rule, Workflow, WorkflowRun
from tests.factories import chain, edge, node, profile_of, published, route, track

pytestmark = pytest.mark.django_db

ADMIN = "/admin/workflows/workflow/"
PRO = {"property": "event.properties.plan", "operator": "is", "value": "pro"}


def branchy() -> dict[str, Any]:
    return {
        "nodes": [
            node("start", "start"),
            node("is_pro", "condition", filter=PRO),
            node("tag", "set_trait", trait="tier", value="gold"),
            node("call", "http_request", url="https://example.com/hook"),
            node("done", "end"),
        ],
        "edges": [
            edge("start", "is_pro"),
            edge("is_pro", "tag", "true"),
            edge("is_pro", "call", "false"),
            edge("tag", "done"),
            edge("call", "done", "success"),
        ],
    }


def _svg(page: str) -> str:
    match = re.search(r'<svg [^>]*class="workflow-graph".*?</svg>', page, re.DOTALL)
    assert match, "no SVG on the page"
    return match.group(0)


def _form(graph: Any, **fields: Any) -> dict[str, Any]:
    return {
        "name": "Onboarding",
        "description": "",
        "graph": graph if isinstance(graph, str) else json.dumps(graph),
        **fields,
    }


def test_pages_render(admin_client: Client, tracker: Any) -> None:
    workflow = published(branchy())
    rule = route(workflow, "signup")
    track(tracker, "signup", "u1", plan="pro")
    run = WorkflowRun.objects.get()
    event = Event.objects.get(event_name="signup")

    for url in (
        ADMIN,
        f"{ADMIN}add/",
        f"{ADMIN}{workflow.pk}/change/",
        f"{ADMIN}{workflow.pk}/publish/",
        f"{ADMIN}{workflow.pk}/restore/1/",
        f"{ADMIN}{workflow.pk}/test/",
        f"{ADMIN}import/",
        f"{ADMIN}actions/",
        "/admin/workflows/rule/",
        "/admin/workflows/rule/add/",
        f"/admin/workflows/rule/{rule.pk}/change/",
        "/admin/workflows/workflowrun/",
        f"/admin/workflows/workflowrun/?workflow__id__exact={workflow.pk}&status__exact=succeeded",
        "/admin/workflows/workflowrun/?test__exact=0",
        f"/admin/workflows/workflowrun/{run.pk}/change/",
        f"/admin/events/event/{event.pk}/change/",
    ):
        assert admin_client.get(url).status_code == 200, url


def test_change_page_draws_the_graph(admin_client: Client) -> None:
    workflow = services.workflow_create(name="wf", graph=branchy())

    page = admin_client.get(f"{ADMIN}{workflow.pk}/change/").content.decode()

    svg = _svg(page)
    for node_id in ("start", "is_pro", "tag", "call", "done"):
        assert f'data-node="{node_id}"' in svg
    for port in ("true", "false", "success", "error", "out"):
        assert f'data-port="{port}"' in svg
        assert f">{port}</text>" in svg
    assert 'data-from="is_pro" data-port="false" data-to="call"' in svg
    for tool in ("Publish", "Test", "Export JSON", "Runs", "Never published."):
        assert tool in page


def test_saving_an_invalid_graph_shows_errors_inline_and_saves_nothing(
    admin_client: Client,
) -> None:
    workflow = services.workflow_create(name="wf", graph=branchy())
    graph = branchy()
    graph["nodes"][2]["config"] = {"trait": "tier"}  # no value
    graph["nodes"].append(node("x", "no_such_action"))
    graph["edges"].append(edge("start", "x"))

    response = admin_client.post(f"{ADMIN}{workflow.pk}/change/", _form(graph))

    assert response.status_code == 200
    page = response.content.decode()
    assert "node &#x27;tag&#x27;, field config.value" in page
    assert "node &#x27;x&#x27;, field action: unknown action" in page
    svg = _svg(page)  # the submitted graph, its failing nodes outlined
    assert re.search(r'class="node invalid" data-node="tag"', svg)
    assert re.search(r'class="node unknown-action invalid" data-node="x"', svg)
    assert "The graph you submitted (not saved)" in page
    workflow.refresh_from_db()
    assert workflow.graph == branchy()
    assert workflow.name == "wf"


def test_malformed_json_says_where(admin_client: Client) -> None:
    workflow = services.workflow_create(name="wf", graph=branchy())

    response = admin_client.post(f"{ADMIN}{workflow.pk}/change/", _form('{"nodes": [}'))

    assert response.status_code == 200
    assert "Not valid JSON: Expecting value (line 1, column 12)" in response.content.decode()
    assert "{&quot;nodes&quot;: [}" in response.content.decode()  # kept, for fixing


def test_add_and_edit_through_the_admin(admin_client: Client) -> None:
    assert 'data-node="start"' in _svg(admin_client.get(f"{ADMIN}add/").content.decode())

    response = admin_client.post(f"{ADMIN}add/", _form(branchy()))

    assert response.status_code == 302, response.content.decode()[-2000:]
    workflow = Workflow.objects.get()
    assert workflow.graph == branchy()
    changed = chain(node("a", "log", message="hi"))

    response = admin_client.post(f"{ADMIN}{workflow.pk}/change/", _form(changed, name="Renamed"))

    assert response.status_code == 302
    workflow.refresh_from_db()
    assert (workflow.name, workflow.graph) == ("Renamed", changed)
    assert workflow.published_version is None


def test_publish_and_restore_through_the_admin(admin_client: Client) -> None:
    workflow = services.workflow_create(name="wf", graph=branchy())

    confirm = admin_client.get(f"{ADMIN}{workflow.pk}/publish/").content.decode()
    assert "Publish the draft as the next version?" in confirm
    assert 'data-node="is_pro"' in confirm
    response = admin_client.post(f"{ADMIN}{workflow.pk}/publish/")
    assert response.status_code == 302
    second = chain(node("a", "log", message="v2"))
    services.workflow_update_draft(workflow=workflow, graph=second)
    admin_client.post(f"{ADMIN}{workflow.pk}/publish/")
    workflow.refresh_from_db()
    assert workflow.published_version.number == 2

    page = admin_client.get(f"{ADMIN}{workflow.pk}/change/").content.decode()
    assert "Restore v1" in page
    assert "Restore v2" not in page  # the published one
    confirm = admin_client.get(f"{ADMIN}{workflow.pk}/restore/1/").content.decode()
    assert 'data-node="tag"' in confirm  # the picture of v1
    response = admin_client.post(f"{ADMIN}{workflow.pk}/restore/1/")

    assert response.status_code == 302
    workflow.refresh_from_db()
    assert workflow.published_version.number == 1
    assert workflow.graph == branchy()
    assert admin_client.get(f"{ADMIN}{workflow.pk}/restore/9/").status_code == 404
    history = [e.get_change_message() for e in LogEntry.objects.order_by("id")]
    assert history == ["Published v1.", "Published v2.", "Restored v1."]


def test_publish_of_an_invalid_draft_is_refused_with_its_errors(admin_client: Client) -> None:
    workflow = services.workflow_create(name="wf", graph=branchy())
    Workflow.objects.filter(pk=workflow.pk).update(
        graph={**branchy(), "nodes": [*branchy()["nodes"], node("p", "gone_plugin")]}
    )

    confirm = admin_client.get(f"{ADMIN}{workflow.pk}/publish/").content.decode()
    assert "can't be published" in confirm
    assert "node &#x27;p&#x27;, field action" in confirm
    assert 'value="Publish"' not in confirm
    response = admin_client.post(f"{ADMIN}{workflow.pk}/publish/", follow=True)

    assert "not published" in response.content.decode()
    workflow.refresh_from_db()
    assert workflow.published_version is None


def test_publish_action_on_the_list(admin_client: Client) -> None:
    a = services.workflow_create(name="a", graph=branchy())
    b = services.workflow_create(name="b", graph=chain(node("x", "log", message="x")))

    admin_client.post(
        ADMIN, {"action": "publish_selected", "_selected_action": [str(a.pk), str(b.pk)]}
    )

    assert [w.published_version.number for w in Workflow.objects.order_by("name")] == [1, 1]


def test_export_then_import_through_the_admin(admin_client: Client) -> None:
    workflow = published(branchy(), name="Onboarding")

    exported = admin_client.get(f"{ADMIN}{workflow.pk}/export/")
    assert exported.status_code == 200
    assert exported["Content-Disposition"] == f'attachment; filename="workflow-{workflow.pk}.json"'
    document = json.loads(exported.content)
    assert document["graph"] == branchy()

    upload = SimpleUploadedFile("wf.json", exported.content, content_type="application/json")
    response = admin_client.post(f"{ADMIN}import/", {"file": upload, "name": "Copy"})
    assert response.status_code == 302, response.content.decode()[-2000:]
    copy = Workflow.objects.get(name="Copy")
    assert copy.graph == branchy()
    assert copy.published_version is None

    response = admin_client.post(f"{ADMIN}import/", {"document": json.dumps(document)})
    assert response.status_code == 302
    assert Workflow.objects.filter(name="Onboarding").count() == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"document": '{"name": "x", "graph": '}, "Not valid JSON"),
        ({"document": ""}, "Choose a file or paste the JSON"),
        ({"file": b"\xff\xfe not json"}, "Not a JSON file"),
        ({"document": '{"name": "x"}'}, "graph: the export has no graph"),
        (
            {"document": json.dumps({"name": "x", "graph": {"nodes": [], "edges": []}})},
            "exactly one start node",
        ),
        (
            {
                "document": json.dumps(
                    {"name": "x", "graph": chain(node("a", "set_trait", trait="t"))}
                )
            },
            "node &#x27;a&#x27;, field config.value",
        ),
    ],
)
def test_import_errors_are_shown(admin_client: Client, data: dict[str, Any], message: str) -> None:
    if "file" in data:
        data = {"file": SimpleUploadedFile("wf.json", data["file"])}

    response = admin_client.post(f"{ADMIN}import/", data)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Workflow.objects.exists()


def test_the_test_form_shows_the_trace_and_keeps_nothing(
    admin_client: Client, tracker: Any
) -> None:
    track(tracker, "page_view", "u1")
    workflow = services.workflow_create(name="wf", graph=branchy())
    events = Event.objects.count()

    response = admin_client.post(
        f"{ADMIN}{workflow.pk}/test/",
        {
            "event": json.dumps({"event_name": "signup", "properties": {"plan": "free"}}),
            "distinct_id": "u1",
            "traits": "",
        },
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Result: succeeded" in page
    trace = page[page.index('id="test-trace"') :]
    for cell in ("<td>is_pro</td>", "<td>false</td>", "<td>call</td>", "<td>success</td>"):
        assert cell in trace
    assert "example.com/hook" in page  # the recorded (not sent) request
    svg = _svg(page)  # the path the test took, in green
    assert 'class="node ran" data-node="call"' in svg
    assert 'class="node" data-node="tag"' in svg
    assert 'class="edge fired" data-from="is_pro" data-port="false"' in svg
    assert "&quot;plan&quot;: &quot;free&quot;" in trace  # node input
    assert Event.objects.count() == events
    assert "tier" not in profile_of("u1").traits
    assert not WorkflowRun.objects.exists()


def test_the_test_form_with_traits_and_bad_input(admin_client: Client) -> None:
    graph = chain(
        node("c", "condition", filter={"property": "traits.plan", "operator": "is", "value": "pro"})
    )
    workflow = services.workflow_create(name="wf", graph=graph)
    url = f"{ADMIN}{workflow.pk}/test/"

    page = admin_client.post(
        url, {"event": '{"event_name": "x"}', "traits": '{"plan": "pro"}'}
    ).content.decode()
    assert "<td>true</td>" in page

    page = admin_client.post(url, {"event": '{"properties": {}}', "distinct_id": "u"}).content
    assert b"event.event_name: the test event needs an event_name" in page
    page = admin_client.post(url, {"event": "[1]"}).content
    assert b"The event is a JSON object" in page


def test_rule_admin_validates_the_condition_inline(admin_client: Client) -> None:
    workflow = published(branchy())
    form = {
        "name": "Pro signups",
        "event_name": "signup",
        "source": "",
        "workflow": str(workflow.pk),
        "condition": json.dumps({"property": "event.properties.plan", "operator": "sounds"}),
        "enabled": "on",
        "priority": "3",
    }

    response = admin_client.post("/admin/workflows/rule/add/", form)

    assert response.status_code == 200
    assert "operator" in response.content.decode()
    assert 'class="errorlist' in response.content.decode()
    assert not Rule.objects.exists()

    response = admin_client.post(
        "/admin/workflows/rule/add/", {**form, "condition": json.dumps(PRO)}
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    rule = Rule.objects.get()
    assert (rule.condition, rule.priority, rule.enabled) == (PRO, 3, True)

    listing = admin_client.get("/admin/workflows/rule/").content.decode()
    assert "signup" in listing
    assert "any" in listing  # the source column
    admin_client.post(
        "/admin/workflows/rule/", {"action": "disable", "_selected_action": [str(rule.pk)]}
    )
    rule.refresh_from_db()
    assert rule.enabled is False


def test_run_admin_shows_traces_and_filters(admin_client: Client, tracker: Any) -> None:
    ok = published(chain(node("a", "set_trait", trait="seen", value=True)), name="ok")
    failing = published(chain(node("n", "increment_trait", trait="name")), name="failing")
    route(ok, "signup")
    route(failing, "signup")
    tracker.post({"distinct_id": "u1", "set": {"name": "Ann"}}, path="/api/people")
    track(tracker, "signup", "u1", plan="pro")
    failed = WorkflowRun.objects.get(workflow=failing)
    event = Event.objects.get(event_name="signup")

    page = admin_client.get(f"/admin/workflows/workflowrun/{failed.pk}/change/").content.decode()
    assert "Node traces" in page
    assert "increment_trait" in page
    assert "&quot;plan&quot;: &quot;pro&quot;" in page  # the start node's input
    assert failed.error
    assert html.escape(failed.error) in page

    listing = admin_client.get(
        "/admin/workflows/workflowrun/", {"status__exact": "failed"}
    ).content.decode()
    assert f"run {failed.pk} of" in listing
    assert "(succeeded)" not in listing

    event_page = admin_client.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    link = re.search(r'href="(/admin/workflows/workflowrun/\?event=\d+)"', event_page)
    assert link
    runs_of_event = admin_client.get(link.group(1)).content.decode()
    assert runs_of_event.count('class="field-__str__"') == 2


def test_workflow_list_links_rules_and_runs(admin_client: Client) -> None:
    workflow = published(branchy())
    route(workflow, "a")
    services.workflow_update_draft(workflow=workflow, graph=chain(node("x", "log", message="x")))

    page = admin_client.get(ADMIN).content.decode()

    assert "unpublished changes" in page
    assert f"/admin/workflows/rule/?workflow__id__exact={workflow.pk}" in page
    assert f"/admin/workflows/workflowrun/?workflow__id__exact={workflow.pk}" in page


class Shout(Action):
    name = "shout"
    description = "Shouts (a plugin action)."
    ports = ("loud", "quiet")
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"volume": {"type": "integer"}},
    }

    def run(self, context: Any, payload: Any) -> Fire:
        return Fire("loud", payload)


def test_actions_page_lists_builtins_and_plugins(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = EntryPoint(
        name="shout",
        value="tests.workflows.test_admin_workflows:Shout",
        group=action_registry.ENTRY_POINT_GROUP,
    )
    monkeypatch.setattr(
        action_registry,
        "entry_points",
        lambda group: [plugin] if group == action_registry.ENTRY_POINT_GROUP else [],
    )
    action_registry.actions_reload()  # loaded again, with the plugin
    try:
        page = admin_client.get(f"{ADMIN}actions/").content.decode()
    finally:
        monkeypatch.undo()
        action_registry.actions_reload()  # without it

    row = page[page.index('id="action-shout"') :]
    row = row[: row.index("</tr>")]
    assert "Shouts (a plugin action)." in row
    assert "loud, quiet, error" in row
    assert "&quot;volume&quot;" in row
    assert "plugin (tests.workflows.test_admin_workflows)" in row
    condition = page[page.index('id="action-condition"') :]
    assert "true, false, error" in condition[: condition.index("</tr>")]
    assert "built-in" in condition[: condition.index("</tr>")]


def test_pages_need_permission(client: Client, django_user_model: Any) -> None:
    workflow = services.workflow_create(name="wf", graph=branchy())
    staff = django_user_model.objects.create_user(
        username="staff", password="pw-123456!", is_staff=True
    )
    client.force_login(staff)

    for url in (
        f"{ADMIN}{workflow.pk}/publish/",
        f"{ADMIN}{workflow.pk}/test/",
        f"{ADMIN}{workflow.pk}/export/",
        f"{ADMIN}import/",
        f"{ADMIN}actions/",
    ):
        assert client.get(url).status_code == 403, url
    assert client.post(f"{ADMIN}{workflow.pk}/publish/").status_code == 403
    workflow.refresh_from_db()
    assert workflow.published_version is None


def test_run_page_shows_its_first_traces_only(
    admin_client: Client, tracker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow = published(chain(node("a", "log", message="1"), node("b", "log", message="2")))
    route(workflow, "signup")
    track(tracker, "signup", "u1")
    track(tracker, "signup", "u2")
    _first, second = WorkflowRun.objects.order_by("id")  # the second: ids of traces differ
    monkeypatch.setattr(run_admin, "TRACES_SHOWN", 2)

    page = admin_client.get(f"/admin/workflows/workflowrun/{second.pk}/change/").content.decode()

    rows = re.findall(r'<tr class="form-row[^"]*"\s+id="traces-(\d+)"', page)
    assert rows == ["0", "1"]
    assert 'class="node ran" data-node="b"' in _svg(page)  # the picture shows the whole path
