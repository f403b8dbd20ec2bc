"""What the visual editor reads from the API: the palette (actions with categories and icons),
live validation, the filter language's text form, template paths from recent events (private
traits only with the permission), the draft against the published version; and the
dashboard's workflow pages."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.workflows import services
from apps.workflows.editor import graph_diff
from apps.workflows.models import Workflow
from tests.factories import chain, edge, node, published
from tests.users import token_client, user_with_perms

pytestmark = pytest.mark.django_db

URL = "/api/v1/workflows"
PRO = {"property": "event.properties.plan", "operator": "is", "value": "pro"}
EMAIL = "ann@example.com"


def test_the_palette_has_a_category_an_icon_and_ports_for_every_action(
    api_client: APIClient,
) -> None:
    actions = {a["name"]: a for a in api_client.get("/api/v1/actions").json()}

    assert {a["category"] for a in actions.values()} == {
        "Flow",
        "Profile",
        "Segments",
        "Events",
        "Integrations",
        "Data",
    }
    assert all(a["icon"] and a["description"] for a in actions.values())
    assert actions["condition"]["category"] == "Flow"
    assert actions["http_request"]["ports"] == ["success", "error"]
    assert actions["condition"]["templated"] is False
    assert actions["set_trait"]["templated"] is True
    # The form draws the condition's filter in the text form, copy_property's path with paths.
    filter_schema = actions["condition"]["config_schema"]["properties"]["filter"]
    assert filter_schema["x-cdp-field"] == "filter"
    assert actions["copy_property"]["config_schema"]["properties"]["from"]["x-cdp-field"] == "path"


def test_validate_answers_every_error_by_node_and_field_and_saves_nothing(
    api_client: APIClient,
) -> None:
    graph = chain(node("tag", "set_trait", value=1), node("call", "http_request", url="ftp://x"))
    graph["edges"].append(edge("call", "nowhere"))

    response = api_client.post(f"{URL}/validate", {"graph": graph}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    assert {(e["node"], e["field"]) for e in body["errors"]} == {
        ("tag", "config.trait"),
        ("call", "config.url"),
        ("call", "edges[2].to"),
    }
    assert not Workflow.objects.exists()
    good = api_client.post(f"{URL}/validate", {"graph": chain(node("e", "end"))}, format="json")
    assert good.json() == {"valid": True, "errors": []}


@pytest.mark.parametrize("body", [{}, {"graph": None}, "not json"])
def test_validate_refuses_a_request_without_a_graph(api_client: APIClient, body: Any) -> None:
    if isinstance(body, str):
        response = api_client.post(f"{URL}/validate", body, content_type="application/json")
    else:
        response = api_client.post(f"{URL}/validate", body, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "field"}


def test_validate_of_a_graph_that_is_not_a_graph_names_the_problem(
    api_client: APIClient,
) -> None:
    response = api_client.post(f"{URL}/validate", {"graph": {"nodes": 3}}, format="json")

    assert response.json()["valid"] is False
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {None, "nodes"}


def test_filter_text_parses_and_prints(api_client: APIClient) -> None:
    parsed = api_client.post(
        f"{URL}/filter-text", {"text": 'event.properties.plan is "pro"'}, format="json"
    )
    assert parsed.status_code == 200
    assert parsed.json() == {
        "filter": PRO,
        "text": 'event.properties.plan is "pro"',
        "error": None,
    }
    printed = api_client.post(f"{URL}/filter-text", {"filter": PRO}, format="json")
    assert printed.json()["text"] == 'event.properties.plan is "pro"'


def test_filter_text_says_where_a_filter_is_wrong(api_client: APIClient) -> None:
    text = "event.properties.plan is"
    bad = api_client.post(f"{URL}/filter-text", {"text": text}, format="json")

    assert bad.status_code == 200
    body = bad.json()
    assert body["filter"] is None
    assert body["error"]["code"] == "invalid_filter"
    assert body["error"]["position"] is not None
    assert 0 <= body["error"]["position"] <= len(text)
    tree = {"property": "event.properties.plan", "operator": "sounds_like", "value": 1}
    wrong_tree = api_client.post(f"{URL}/filter-text", {"filter": tree}, format="json")
    assert wrong_tree.json()["error"]["message"]
    assert wrong_tree.json()["text"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "text"),
        ({"text": "a is 1", "filter": PRO}, "text"),
        ({"text": ""}, "text"),
        ({"text": "x" * 20_001}, "text"),
    ],
)
def test_filter_text_refuses_bad_requests(api_client: APIClient, body: Any, field: str) -> None:
    response = api_client.post(f"{URL}/filter-text", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


def _identified(tracker: Any) -> None:
    response = tracker.post(
        {"distinct_id": "ann", "traits": {"plan": "pro"}, "private_traits": {"email": EMAIL}},
        path="/api/identify",
    )
    assert response.status_code == 200, response.content
    response = tracker.post(
        {
            "event_name": "signed_up",
            "distinct_id": "ann",
            "properties": {"plan": "pro", "cart": {"total": 3}},
            "context": {"page": {"url": "https://example.com/"}},
        }
    )
    assert response.status_code == 200, response.content


def test_paths_come_from_recent_events_and_profiles(tracker: Any, api_client: APIClient) -> None:
    _identified(tracker)

    paths = api_client.get(f"{URL}/paths").json()["paths"]

    assert paths == sorted(paths)
    for path in (
        "event.properties.plan",
        "event.properties.cart.total",
        "event.context.page.url",
        "event.name",
        "profile.traits.plan",
        "session.utm_source",
        "profile.private_traits.email",  # the caller may see private traits
    ):
        assert path in paths, path


def test_paths_leave_out_private_traits_without_the_permission(tracker: Any) -> None:
    _identified(tracker)
    user = user_with_perms("workflows.view_workflow", "events.view_event")

    paths = token_client(user).get(f"{URL}/paths").json()["paths"]

    assert "profile.traits.plan" in paths
    assert not [p for p in paths if "private" in p or "email" in p]


def test_paths_need_the_permission_to_view_events() -> None:
    user = user_with_perms("workflows.view_workflow")

    response = token_client(user).get(f"{URL}/paths")

    assert response.status_code == 403
    assert "events.view_event" in response.json()["error"]["message"]


def test_diff_names_the_nodes_and_edges_the_draft_changes(api_client: APIClient) -> None:
    workflow = published(
        chain(node("tag", "set_trait", trait="plan", value="pro"), node("done", "end"))
    )
    draft = chain(
        node("tag", "set_trait", trait="plan", value="team", once=True),
        node("note", "log", message="hi"),
    )
    draft["nodes"][0]["position"] = {"x": 500, "y": 10}  # moved: not a change
    services.workflow_update_draft(workflow=workflow, graph=draft)

    diff = api_client.get(f"{URL}/{workflow.pk}/diff").json()

    assert diff == {
        "published_version": 1,
        "added": ["note"],
        "removed": ["done"],
        "changed": [{"node": "tag", "fields": ["config.once", "config.value"]}],
        "edges_added": [{"from": "tag", "port": "out", "to": "note"}],
        "edges_removed": [{"from": "tag", "port": "out", "to": "done"}],
    }


def test_diff_of_an_unpublished_workflow_adds_every_node(api_client: APIClient) -> None:
    workflow = services.workflow_create(name="new", graph=chain(node("e", "end")))

    diff = api_client.get(f"{URL}/{workflow.pk}/diff").json()

    assert diff["published_version"] is None
    assert diff["added"] == ["e", "start"]
    assert api_client.get(f"{URL}/999999/diff").status_code == 404


def test_graph_diff_ignores_positions_and_a_missing_port() -> None:
    old = {"nodes": [node("start", "start")], "edges": [{"from": "start", "to": "x"}]}
    new = {
        "nodes": [{**node("start", "start"), "position": {"x": 1, "y": 2}}],
        "edges": [edge("start", "x")],
    }

    assert graph_diff(old, new) == {
        "added": [],
        "removed": [],
        "changed": [],
        "edges_added": [],
        "edges_removed": [],
    }


# --- the dashboard's pages ------------------------------------------------------------------------


def _page_client(*perms: str) -> Client:
    client = Client()
    client.force_login(user_with_perms(*perms, staff=False))
    return client


def _config(html: str) -> dict[str, Any]:
    match = re.search(r'<script id="wf-editor-config" type="application/json">(.*?)</script>', html)
    assert match, "no editor config on the page"
    return json.loads(match.group(1))


def test_the_editor_page_says_what_the_user_may_do() -> None:
    workflow = services.workflow_create(name="Onboarding")
    viewer = _page_client("workflows.view_workflow")
    editor = _page_client(
        "workflows.view_workflow",
        "workflows.change_workflow",
        "workflows.run_workflow_test",
        "events.view_event",
    )

    seen = viewer.get(f"/workflows/{workflow.pk}/")
    edited = editor.get(f"/workflows/{workflow.pk}/")

    assert seen.status_code == edited.status_code == 200
    assert _config(seen.content.decode())["can"] == {
        "change": False,
        "publish": False,
        "test": False,
        "runs": False,
        "events": False,
        "paths": False,
    }
    config = _config(edited.content.decode())
    assert config["can"] == {
        "change": True,
        "publish": False,
        "test": True,
        "runs": False,
        "events": True,
        "paths": True,
    }
    assert config["api"]["workflow"] == f"/api/v1/workflows/{workflow.pk}"
    assert "vendor/drawflow/drawflow.min.js" in edited.content.decode()
    assert viewer.get("/workflows/999999/").status_code == 404


def test_the_workflow_list_and_a_new_workflow() -> None:
    services.workflow_create(name="Welcome")
    client = _page_client("workflows.view_workflow", "workflows.add_workflow")

    listed = client.get("/workflows/")
    created = client.post("/workflows/new/", {"name": "Win-back"})

    assert "Welcome" in listed.content.decode()
    workflow = Workflow.objects.get(name="Win-back")
    assert created.status_code == 302
    assert created["Location"] == f"/workflows/{workflow.pk}/"
    assert workflow.graph == {"nodes": [node("start", "start")], "edges": []}


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_a_new_workflow_needs_a_name(name: str) -> None:
    client = _page_client("workflows.view_workflow", "workflows.add_workflow")

    response = client.post("/workflows/new/", {"name": name}, follow=True)

    assert response.redirect_chain[-1][0] == "/workflows/"
    assert "needs a name" in response.content.decode()
    assert not Workflow.objects.exists()


def test_a_new_workflow_needs_the_permission_to_add_one() -> None:
    client = _page_client("workflows.view_workflow")

    response = client.post("/workflows/new/", {"name": "Nope"})

    assert response.status_code == 403
    assert not Workflow.objects.exists()


def _queries(call: Any) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = call()
    assert response.status_code == 200, response.content
    return len(captured.captured_queries)


def test_validate_and_paths_make_as_many_queries_however_large(
    api_client: APIClient, tracker: Any
) -> None:
    small = chain(node("a", "log", message="x"))
    large = chain(*(node(f"n{i}", "set_trait", trait=f"t{i}", value=i) for i in range(60)))

    def validate(graph: dict[str, Any]) -> Any:
        return lambda: api_client.post(f"{URL}/validate", {"graph": graph}, format="json")

    assert _queries(validate(small)) == _queries(validate(large))
    before = _queries(lambda: api_client.get(f"{URL}/paths"))
    for i in range(5):
        tracker.post({"event_name": "e", "distinct_id": f"u{i}", "properties": {f"p{i}": 1}})
    assert _queries(lambda: api_client.get(f"{URL}/paths")) == before
