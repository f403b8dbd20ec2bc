"""The rules API (CRUD, condition validation), the runs API (list, filters, detail with node
traces) and authentication of every workflow endpoint."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.sources.models import EventSource
from apps.workflows.models import Rule, WorkflowRun
from tests.factories import chain, node, published, route, track
from tests.users import client_with_perms

pytestmark = pytest.mark.django_db

RULES = "/api/v1/rules"
RUNS = "/api/v1/runs"
PRO = {"property": "event.properties.plan", "operator": "is", "value": "pro"}


@pytest.fixture
def workflow() -> Any:
    return published(chain(node("a", "set_trait", trait="seen", value=True)))


def test_rule_crud(api_client: APIClient, workflow: Any, source: EventSource) -> None:
    created = api_client.post(
        RULES,
        {
            "name": "Pro signups",
            "workflow": workflow.pk,
            "event_name": "signup",
            "source": str(source.pk),
            "condition": PRO,
            "priority": 5,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    rule = created.json()
    assert rule["condition"] == PRO
    assert rule["enabled"] is True
    assert rule["source"] == str(source.pk)

    assert [r["name"] for r in api_client.get(RULES).json()["results"]] == ["Pro signups"]
    assert api_client.get(f"{RULES}/{rule['id']}").json()["priority"] == 5

    patched = api_client.patch(
        f"{RULES}/{rule['id']}",
        {"enabled": False, "source": None, "condition": None},
        format="json",
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["enabled"] is False
    assert patched.json()["source"] is None
    assert patched.json()["condition"] is None
    assert patched.json()["event_name"] == "signup"  # untouched

    assert api_client.delete(f"{RULES}/{rule['id']}").status_code == 204
    assert not Rule.objects.exists()
    assert api_client.get(f"{RULES}/{rule['id']}").status_code == 404


def test_rules_filter_by_workflow(api_client: APIClient, workflow: Any) -> None:
    other = published(chain(node("b", "log", message="x")), name="other")
    route(workflow, "a")
    route(other, "b")

    listed = api_client.get(RULES, {"workflow": other.pk}).json()["results"]

    assert [r["event_name"] for r in listed] == ["b"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_name": "x", "workflow": "WF"}, "name"),
        ({"name": "r"}, "workflow"),
        ({"name": "r", "workflow": 999}, "workflow"),
        ({"name": "r", "workflow": "WF", "source": "not-a-uuid"}, "source"),
        (
            {"name": "r", "workflow": "WF", "condition": {"property": "event.x", "operator": "?"}},
            "condition",
        ),
        ({"name": "r", "workflow": "WF", "priority": "high"}, "priority"),
    ],
)
def test_rule_bad_input_is_400_and_saves_nothing(
    api_client: APIClient, workflow: Any, body: dict[str, Any], field: str
) -> None:
    body = {k: workflow.pk if v == "WF" else v for k, v in body.items()}

    response = api_client.post(RULES, body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"].startswith(field)
    assert not Rule.objects.exists()


def test_rule_patch_with_a_bad_condition_changes_nothing(
    api_client: APIClient, workflow: Any
) -> None:
    rule = route(workflow, "signup", condition=PRO)

    response = api_client.patch(
        f"{RULES}/{rule.pk}", {"condition": {"property": "nope.x", "operator": "is"}}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["field"].startswith("condition")
    rule.refresh_from_db()
    assert rule.condition == PRO


def _runs(tracker: Any, workflow: Any) -> None:
    route(workflow, "signup")
    failing = published(chain(node("n", "increment_trait", trait="name")), name="failing")
    route(failing, "signup")
    tracker.post({"distinct_id": "u1", "set": {"name": "Ann"}}, path="/api/people")
    track(tracker, "signup", "u1", plan="pro")


def test_runs_list_and_filters(api_client: APIClient, tracker: Any, workflow: Any) -> None:
    _runs(tracker, workflow)
    event_id = WorkflowRun.objects.first().event_ref

    everything = api_client.get(RUNS).json()["results"]
    assert len(everything) == 2
    assert {r["status"] for r in everything} == {"succeeded", "failed"}
    of_workflow = api_client.get(RUNS, {"workflow": workflow.pk}).json()["results"]
    assert [r["workflow"] for r in of_workflow] == [workflow.pk]
    assert len(api_client.get(RUNS, {"event": event_id}).json()["results"]) == 2
    assert api_client.get(RUNS, {"event": event_id + 1000}).json()["results"] == []
    failed = api_client.get(RUNS, {"status": "failed"}).json()["results"]
    assert len(failed) == 1
    assert "name" in failed[0]["error"]
    for params, field in (({"status": "x"}, "status"), ({"event": "x"}, "event")):
        response = api_client.get(RUNS, params)
        assert response.status_code == 400
        assert response.json()["error"]["field"] == field
    assert api_client.get(RUNS, {"workflow": 999}).status_code == 404


def test_run_detail_has_node_traces(api_client: APIClient, tracker: Any, workflow: Any) -> None:
    _runs(tracker, workflow)
    run = WorkflowRun.objects.get(workflow=workflow)

    detail = api_client.get(f"{RUNS}/{run.pk}").json()

    assert detail["status"] == "succeeded"
    assert detail["version"] == 1
    assert [(t["node"], t["action"], t["port"]) for t in detail["traces"]] == [
        ("start", "start", "out"),
        ("a", "set_trait", "out"),
    ]
    first = detail["traces"][0]
    assert first["input"]["properties"] == {"plan": "pro"}
    assert first["duration_ms"] >= 0
    assert first["error"] == ""
    failed = WorkflowRun.objects.exclude(workflow=workflow).get()
    traces = api_client.get(f"{RUNS}/{failed.pk}").json()["traces"]
    assert traces[-1]["node"] == "n"
    assert traces[-1]["error"]
    assert api_client.get(f"{RUNS}/999999").status_code == 404


def test_run_list_query_count_is_flat(
    api_client: APIClient, tracker: Any, workflow: Any, django_assert_max_num_queries: Any
) -> None:
    route(workflow, "signup")
    for n in range(5):
        track(tracker, "signup", f"u{n}")
    assert WorkflowRun.objects.count() == 5

    with django_assert_max_num_queries(4):  # auth, the page (with workflow/version/rule)
        response = api_client.get(RUNS)
    assert len(response.json()["results"]) == 5


ENDPOINTS = [
    ("get", RULES),
    ("post", RULES),
    ("get", f"{RULES}/1"),
    ("patch", f"{RULES}/1"),
    ("delete", f"{RULES}/1"),
    ("get", "/api/v1/workflows"),
    ("post", "/api/v1/workflows"),
    ("get", "/api/v1/workflows/1"),
    ("patch", "/api/v1/workflows/1"),
    ("delete", "/api/v1/workflows/1"),
    ("post", "/api/v1/workflows/1/publish"),
    ("post", "/api/v1/workflows/1/restore"),
    ("get", "/api/v1/workflows/1/export"),
    ("post", "/api/v1/workflows/import"),
    ("post", "/api/v1/workflows/1/test"),
    ("get", "/api/v1/workflows/1/runs"),
    ("get", RUNS),
    ("get", f"{RUNS}/1"),
    ("get", "/api/v1/actions"),
]


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_every_endpoint_needs_a_token(method: str, url: str) -> None:
    response = getattr(APIClient(), method)(url, {}, format="json")

    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(("method", "url"), ENDPOINTS[:3])
def test_a_non_staff_token_is_refused(method: str, url: str, django_user_model: Any) -> None:
    client = client_with_perms(staff=False)

    assert getattr(client, method)(url, {}, format="json").status_code == 403


def test_rule_from_the_api_routes_events(
    api_client: APIClient, tracker: Any, workflow: Any
) -> None:
    api_client.post(
        RULES,
        {"name": "r", "workflow": workflow.pk, "event_name": "signup", "condition": PRO},
        format="json",
    )

    track(tracker, "signup", "u1", plan="free")
    track(tracker, "signup", "u2", plan="pro")

    assert list(WorkflowRun.objects.values_list("distinct_id", flat=True)) == ["u2"]
