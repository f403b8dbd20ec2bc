"""The workflows API: CRUD of drafts (validated, nothing saved when invalid), publish, restore,
export and import, test runs (rolled back), runs of a workflow, and the action registry."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.events.models import Event
from apps.profiles.models import Profile
from apps.workflows import services
from apps.workflows.models import Workflow, WorkflowRun, WorkflowVersion
from tests.factories import chain, edge, node, profile_of, published, route, track

pytestmark = pytest.mark.django_db

URL = "/api/v1/workflows"
PRO = {"property": "event.properties.plan", "operator": "is", "value": "pro"}


def branchy() -> dict[str, Any]:
    return {
        "nodes": [
            node("start", "start"),
            node("is_pro", "condition", filter=PRO),
            node("tag", "set_trait", trait="tier", value="gold"),
            node("note", "template", template="plan={{ event.properties.plan }}", variable="msg"),
            node("done", "end"),
        ],
        "edges": [
            edge("start", "is_pro"),
            edge("is_pro", "tag", "true"),
            edge("is_pro", "note", "false"),
            edge("tag", "done"),
            edge("note", "done"),
        ],
    }


def _errors(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 400, response.content
    body = response.json()["error"]
    assert body["code"] == "invalid_workflow"
    return body["errors"]


def test_create_list_retrieve(api_client: APIClient) -> None:
    response = api_client.post(URL, {"name": "Onboarding", "graph": branchy()}, format="json")

    assert response.status_code == 201, response.content
    created = response.json()
    assert created["graph"] == branchy()
    assert created["published_version"] is None
    assert created["unpublished_changes"] is True
    assert created["versions"] == []
    listed = api_client.get(URL).json()
    assert [w["name"] for w in listed["results"]] == ["Onboarding"]
    assert api_client.get(f"{URL}/{created['id']}").json()["name"] == "Onboarding"


def test_create_without_graph_starts_with_a_start_node(api_client: APIClient) -> None:
    response = api_client.post(URL, {"name": "Empty"}, format="json")

    assert response.status_code == 201
    assert [n["action"] for n in response.json()["graph"]["nodes"]] == ["start"]


def test_create_with_an_invalid_graph_saves_nothing(api_client: APIClient) -> None:
    graph = branchy()
    graph["nodes"][2]["config"] = {"trait": "tier"}  # no value

    errors = _errors(api_client.post(URL, {"name": "Bad", "graph": graph}, format="json"))

    assert [(e["node"], e["field"]) for e in errors] == [("tag", "config.value")]
    assert "value" in errors[0]["message"]
    assert not Workflow.objects.exists()


def test_create_needs_a_name(api_client: APIClient) -> None:
    response = api_client.post(URL, {"graph": branchy()}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "name"


def test_patch_edits_the_draft_only(api_client: APIClient) -> None:
    workflow = published(chain(node("a", "log", message="hi")))
    graph = branchy()

    response = api_client.patch(
        f"{URL}/{workflow.pk}", {"graph": graph, "name": "New"}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["name"] == "New"
    assert body["graph"] == graph
    assert body["published_version"] == 1
    assert body["unpublished_changes"] is True
    workflow.refresh_from_db()
    assert workflow.published_version.graph != graph


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda g: g["nodes"].append(node("x", "no_such_action")),
            {"node": "x", "field": "action"},
        ),
        (
            lambda g: g["edges"].append(edge("is_pro", "done", "maybe")),
            {"node": "is_pro", "field": "edges[5].port"},
        ),
        (
            lambda g: g["edges"].append(edge("done", "is_pro")),
            {"node": "is_pro", "field": "edges"},
        ),
        (
            lambda g: g["nodes"][1]["config"].update(
                filter={"property": "event.x", "operator": "??"}
            ),
            {"node": "is_pro", "field": None},
        ),
        (
            lambda g: g["edges"].append(edge("tag", "ghost")),
            {"node": "tag", "field": "edges[5].to"},
        ),
    ],
    ids=["unknown-action", "unknown-port", "cycle", "bad-filter", "missing-node"],
)
def test_patch_with_an_invalid_graph_is_refused_naming_node_and_field(
    api_client: APIClient, change: Any, expected: dict[str, Any]
) -> None:
    workflow = services.workflow_create(name="wf", graph=branchy())
    graph = branchy()
    change(graph)

    errors = _errors(api_client.patch(f"{URL}/{workflow.pk}", {"graph": graph}, format="json"))

    matching = [e for e in errors if e["node"] == expected["node"]]
    assert matching, errors
    if expected["field"] is not None:
        assert expected["field"] in [e["field"] for e in matching], errors
    assert all(e["message"] for e in errors)
    workflow.refresh_from_db()
    assert workflow.graph == branchy()


def test_patch_with_a_malformed_graph_names_the_field(api_client: APIClient) -> None:
    workflow = services.workflow_create(name="wf")

    errors = _errors(
        api_client.patch(f"{URL}/{workflow.pk}", {"graph": {"nodes": [{"id": 1}]}}, format="json")
    )

    fields = {e["field"] for e in errors}
    assert "edges" in " ".join(e["message"] for e in errors) or "edges" in fields
    assert Workflow.objects.get().graph == {"nodes": [node("start", "start")], "edges": []}


def test_delete(api_client: APIClient) -> None:
    workflow = published(branchy())
    route(workflow, "signup")

    assert api_client.delete(f"{URL}/{workflow.pk}").status_code == 204
    assert not Workflow.objects.exists()
    assert api_client.get(f"{URL}/{workflow.pk}").status_code == 404


def test_publish_and_restore(api_client: APIClient) -> None:
    workflow = services.workflow_create(name="wf", graph=branchy())

    first = api_client.post(f"{URL}/{workflow.pk}/publish")
    assert first.status_code == 201, first.content
    assert first.json()["number"] == 1
    assert first.json()["published_by"] == "root"
    second_graph = chain(node("a", "log", message="v2"))
    api_client.patch(f"{URL}/{workflow.pk}", {"graph": second_graph}, format="json")
    assert api_client.post(f"{URL}/{workflow.pk}/publish").json()["number"] == 2

    detail = api_client.get(f"{URL}/{workflow.pk}").json()
    assert detail["published_version"] == 2
    assert detail["unpublished_changes"] is False
    assert [v["number"] for v in detail["versions"]] == [2, 1]

    restored = api_client.post(f"{URL}/{workflow.pk}/restore", {"version": 1}, format="json")
    assert restored.status_code == 200, restored.content
    assert restored.json()["published_version"] == 1
    assert restored.json()["graph"] == branchy()
    assert WorkflowVersion.objects.count() == 2


def test_publish_of_an_invalid_draft_is_refused(api_client: APIClient) -> None:
    workflow = services.workflow_create(name="wf", graph=branchy())
    # A draft saved before an action disappeared (a plugin uninstalled): stored as is.
    Workflow.objects.filter(pk=workflow.pk).update(
        graph={**branchy(), "nodes": [*branchy()["nodes"], node("p", "uninstalled_plugin")]}
    )

    errors = _errors(api_client.post(f"{URL}/{workflow.pk}/publish"))

    assert {"node": "p", "field": "action"}.items() <= errors[0].items() or any(
        e["node"] == "p" and e["field"] == "action" for e in errors
    )
    assert not WorkflowVersion.objects.exists()


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"version": 7}, 404, "version"),
        ({"version": 0}, 400, "version"),
        ({"version": "one"}, 400, "version"),
        ({}, 400, "version"),
    ],
)
def test_restore_refuses_unknown_versions(
    api_client: APIClient, body: dict[str, Any], status: int, field: str
) -> None:
    workflow = published(branchy())

    response = api_client.post(f"{URL}/{workflow.pk}/restore", body, format="json")

    assert response.status_code == status, response.content
    assert response.json()["error"]["field"] == field


def test_restore_of_another_workflows_version_is_not_found(api_client: APIClient) -> None:
    published(branchy(), name="other")
    workflow = services.workflow_create(name="wf")

    response = api_client.post(f"{URL}/{workflow.pk}/restore", {"version": 1}, format="json")

    assert response.status_code == 404


def test_export_then_import(api_client: APIClient) -> None:
    workflow = published(branchy(), name="Onboarding")

    exported = api_client.get(f"{URL}/{workflow.pk}/export")
    assert exported.status_code == 200
    assert "attachment" in exported["Content-Disposition"]
    document = exported.json()
    assert document["format"] == "cdp.workflow"
    assert document["graph"] == branchy()
    assert document["published_version"] == 1

    imported = api_client.post(f"{URL}/import", document, format="json")

    assert imported.status_code == 201, imported.content
    copy = Workflow.objects.get(pk=imported.json()["id"])
    assert copy.name == "Onboarding"
    assert copy.graph == branchy()
    assert copy.published_version is None  # imported as a draft


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x"}, "graph"),
        ({"graph": branchy()}, "name"),
        ({"format": "something-else", "name": "x", "graph": branchy()}, "format"),
        ({"format_version": 99, "name": "x", "graph": branchy()}, "format_version"),
        ({"name": "x", "graph": {"nodes": [node("a", "nope")], "edges": []}}, "action"),
    ],
)
def test_import_refuses_bad_documents(
    api_client: APIClient, body: dict[str, Any], field: str
) -> None:
    response = api_client.post(f"{URL}/import", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert not Workflow.objects.exists()


def test_import_of_malformed_json_is_400(api_client: APIClient) -> None:
    for raw in ('{"name": "x", "graph": ', "[1, 2]", "null"):
        response = api_client.generic("POST", f"{URL}/import", raw, content_type="application/json")
        assert response.status_code == 400, (raw, response.content)
        assert response.json()["error"]["message"]
    assert not Workflow.objects.exists()


def test_test_run_returns_the_trace_and_changes_nothing(
    api_client: APIClient, tracker: Any
) -> None:
    track(tracker, "page_view", "u1")
    profile_of("u1")
    workflow = services.workflow_create(name="wf", graph=branchy())
    events_before = Event.objects.count()
    traits_before = profile_of("u1").traits

    response = api_client.post(
        f"{URL}/{workflow.pk}/test",
        {
            "event": {"event_name": "signup", "properties": {"plan": "pro"}},
            "profile": {"distinct_id": "u1"},
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    result = response.json()
    assert result["status"] == "succeeded", result
    assert [(t["node"], t["port"]) for t in result["trace"]] == [
        ("start", "out"),
        ("is_pro", "true"),
        ("tag", "out"),
        ("done", ""),
    ]
    assert result["trace"][1]["input"]["properties"] == {"plan": "pro"}
    assert result["profile_after"]["traits"]["tier"] == "gold"
    assert result["changes"][0]["kind"] == "people"
    # Rolled back: no trait, no event, no run, no profile created.
    assert profile_of("u1").traits == traits_before
    assert Event.objects.count() == events_before
    assert not WorkflowRun.objects.exists()
    assert Profile.objects.count() == 1


def test_test_run_records_requests_and_emits_nothing(api_client: APIClient, tracker: Any) -> None:
    track(tracker, "page_view", "u1")
    graph = chain(
        node("emit", "emit_event", event_name="upgraded", properties={"plan": "pro"}),
        node("call", "http_request", method="POST", url="https://example.com/hook"),
    )
    graph["nodes"].append(node("seg", "set_trait", trait="called", value=True))
    graph["edges"].append(edge("call", "seg", "success"))
    workflow = services.workflow_create(name="wf", graph=graph)
    events = list(Event.objects.values_list("id", flat=True))

    result = api_client.post(
        f"{URL}/{workflow.pk}/test",
        {"event": {"event_name": "signup", "distinct_id": "u1"}},
        format="json",
    ).json()

    assert result["status"] == "succeeded", result
    assert [t["node"] for t in result["trace"]] == ["start", "emit", "call", "seg"]
    assert result["requests"][0]["url"] == "https://example.com/hook"
    assert [c["kind"] for c in result["changes"]] == ["emit", "people"]
    assert list(Event.objects.values_list("id", flat=True)) == events
    assert "called" not in profile_of("u1").traits


def test_test_run_of_an_invalid_draft_is_refused(api_client: APIClient) -> None:
    workflow = services.workflow_create(name="wf", graph=branchy())
    Workflow.objects.filter(pk=workflow.pk).update(graph={"nodes": [], "edges": []})

    response = api_client.post(
        f"{URL}/{workflow.pk}/test",
        {"event": {"event_name": "x", "distinct_id": "u"}},
        format="json",
    )

    assert _errors(response)[0]["field"] == "nodes"


def test_workflow_list_query_count_is_flat(
    api_client: APIClient, django_assert_max_num_queries: Any
) -> None:
    for n in range(5):
        published(branchy(), name=f"wf{n}")

    with django_assert_max_num_queries(3):  # auth, the page with its published versions
        response = api_client.get(URL)
    assert len(response.json()["results"]) == 5


def test_test_run_with_traits_for_a_made_up_person(api_client: APIClient) -> None:
    graph = chain(
        node("c", "condition", filter={"property": "traits.plan", "operator": "is", "value": "pro"})
    )
    workflow = services.workflow_create(name="wf", graph=graph)

    response = api_client.post(
        f"{URL}/{workflow.pk}/test",
        {"event": {"event_name": "signup"}, "profile": {"traits": {"plan": "pro"}}},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["trace"][1]["port"] == "true"
    assert not Profile.objects.exists()


def test_test_run_runs_the_draft_not_the_published_version(api_client: APIClient) -> None:
    workflow = published(chain(node("a", "log", message="published")))
    services.workflow_update_draft(workflow=workflow, graph=chain(node("b", "log", message="d")))

    result = api_client.post(
        f"{URL}/{workflow.pk}/test",
        {"event": {"event_name": "x", "distinct_id": "someone"}},
        format="json",
    ).json()

    assert [t["node"] for t in result["trace"]] == ["start", "b"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "event"),
        ({"event": "signup"}, "event"),
        ({"event": {"distinct_id": "u1"}}, "event.event_name"),
        ({"event": {"event_name": "signup"}}, "event.distinct_id"),
        (
            {"event": {"event_name": "a", "distinct_id": "u"}, "profile": {"traits": 3}},
            "profile.traits",
        ),
    ],
)
def test_test_run_refuses_bad_input(
    api_client: APIClient, body: dict[str, Any], field: str
) -> None:
    workflow = services.workflow_create(name="wf", graph=branchy())

    response = api_client.post(f"{URL}/{workflow.pk}/test", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field


def test_runs_of_a_workflow_paginated_and_filtered(api_client: APIClient, tracker: Any) -> None:
    ok = published(chain(node("a", "log", message="hi")), name="ok")
    failing = published(chain(node("n", "increment_trait", trait="name", by=1)), name="failing")
    route(ok, "signup")
    route(failing, "signup")
    for distinct_id, name in [("u1", "Ann"), ("u2", "Bob"), ("u3", "Cy")]:
        tracker.post({"distinct_id": distinct_id, "set": {"name": name}}, path="/api/people")
        track(tracker, "signup", distinct_id)

    page = api_client.get(f"{URL}/{ok.pk}/runs", {"page_size": 2}).json()
    assert len(page["results"]) == 2
    assert page["results"][0]["status"] == "succeeded"
    assert page["results"][0]["version"] == 1
    assert page["results"][0]["event"] is not None
    rest = api_client.get(page["next"]).json()
    assert len(rest["results"]) == 1
    assert rest["next"] is None
    ids = {r["distinct_id"] for r in page["results"] + rest["results"]}
    assert ids == {"u1", "u2", "u3"}

    failed = api_client.get(f"{URL}/{failing.pk}/runs", {"status": "failed"}).json()
    assert len(failed["results"]) == 3
    assert all(r["error"] for r in failed["results"])
    assert (
        api_client.get(f"{URL}/{failing.pk}/runs", {"status": "succeeded"}).json()["results"] == []
    )
    bad = api_client.get(f"{URL}/{ok.pk}/runs", {"status": "done"})
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "status"


def test_actions_lists_the_registry(api_client: APIClient) -> None:
    response = api_client.get("/api/v1/actions")

    assert response.status_code == 200
    actions = {a["name"]: a for a in response.json()}
    assert actions["condition"]["ports"] == ["true", "false", "error"]
    assert actions["http_request"]["config_schema"]["oneOf"] == [
        {"required": ["url"]},
        {"required": ["resource"]},
    ]
    assert actions["set_trait"]["description"]
    assert json.dumps(actions)  # plain JSON all the way down
