"""Templates are bounded: a workflow asking for a huge value, number or loop is refused when it
is saved (400 with the node and field) or fails its node at run time, never a 5xx."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.workflows import services
from apps.workflows.models import NodeTrace, RunStatus, Workflow, WorkflowRun
from tests.factories import chain, node, published, route, track

URL = "/api/v1/workflows"

BOMBS = [
    "{{ 'x' * 10**8 }}",
    "{{ 2 ** 200000 }}",
    "{{ (10 ** 100) ** 100 }}",
    "{{ [0] * 10**9 }}",
    "{{ 'x' | center(100000000) }}",
    "{{ 'x'.ljust(10**8) }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ 'ab' | replace('a', 'a' * 60000) | replace('a', 'a' * 60000) }}",
    "{% for i in range(10**6) %}x{% endfor %}",
    "{% for i in range(1000) %}{{ 'y' * 1000 }}{% endfor %}",
    "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}"
    "{% endfor %}{% endfor %}{% endfor %}",
]


@pytest.mark.django_db
@pytest.mark.parametrize("template", BOMBS)
def test_saving_a_template_bomb_is_a_400_with_the_field(
    api_client: APIClient, template: str
) -> None:
    graph = chain(node("t", "template", template=template, variable="v"))
    response = api_client.post(URL, {"name": "Bomb", "graph": graph}, format="json")
    assert response.status_code == 400, response.content
    [error] = response.json()["error"]["errors"]
    assert (error["node"], error["field"]) == ("t", "config.template")
    assert "template error" in error["message"]
    assert not Workflow.objects.exists()


def test_a_bomb_built_from_event_data_fails_the_node(tracker: Any) -> None:
    # Only the event makes it big: saved fine, refused when it runs.
    graph = chain(
        node("t", "template", template="{{ 'x' * event.properties.n }}", variable="v"),
        node("p", "set_trait", trait="p", value="{{ event.properties.b ** event.properties.e }}"),
    )
    route(published(graph), "signup")
    track(tracker, "signup", "u1", n=10**8, b=2, e=200000)
    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.FAILED
    trace = NodeTrace.objects.get(run=run, node_id="t")
    assert "repeats a value" in trace.error


@pytest.mark.django_db
def test_ordinary_templates_still_render() -> None:
    graph = chain(
        node(
            "t",
            "template",
            template="{{ event.properties.plan | upper }}-{{ 2 ** 10 }}-{{ 'ab' * 3 }}"
            "{% for i in range(3) %}{{ i }}{% endfor %}",
            variable="v",
        )
    )
    workflow = services.workflow_create(name="ok", graph=graph)
    result = services.workflow_test_run(
        workflow=workflow,
        event_payload={"event_name": "e", "distinct_id": "d", "properties": {"plan": "pro"}},
    )
    assert result["status"] == "succeeded", result
    assert result["variables"]["v"] == "PRO-1024-ababab012"
