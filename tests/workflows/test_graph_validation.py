"""Graph validation: every error names the node and the field at fault."""

from __future__ import annotations

from typing import Any

import pytest

from apps.workflows import services
from apps.workflows.graph import WorkflowInvalid, graph_errors
from tests.factories import chain, edge, node


def errors_of(graph: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    return [(e["node"], e["field"]) for e in graph_errors(graph)]


def test_a_valid_graph_has_no_errors() -> None:
    graph = chain(
        node(
            "c",
            "condition",
            filter={"property": "event.properties.plan", "operator": "is", "value": "pro"},
        )
    )
    graph["nodes"].append(node("t", "set_trait", trait="plan", value="{{ event.properties.plan }}"))
    graph["edges"].append(edge("c", "t", "true"))
    assert graph_errors(graph) == []


def test_unknown_action_names_the_node() -> None:
    assert errors_of(chain(node("x", "teleport"))) == [("x", "action")]


def test_unknown_port_names_the_node_and_edge() -> None:
    graph = chain(node("c", "condition", filter={"property": "traits.plan", "operator": "is_set"}))
    graph["nodes"].append(node("e", "end"))
    graph["edges"].append(edge("c", "e", "maybe"))
    errors = graph_errors(graph)
    assert [(e["node"], e["field"]) for e in errors] == [("c", "edges[1].port")]
    assert "true" in errors[0]["message"]


def test_error_port_is_implicit_for_every_action() -> None:
    graph = chain(node("t", "set_trait", trait="a", value=1))
    graph["nodes"].append(node("log", "log", message="failed"))
    graph["edges"].append(edge("t", "log", "error"))
    assert graph_errors(graph) == []


def test_exactly_one_start() -> None:
    assert (None, "nodes") in errors_of({"nodes": [node("a", "end")], "edges": []})
    two = {"nodes": [node("s1", "start"), node("s2", "start")], "edges": []}
    assert (None, "nodes") in errors_of(two)


def test_cycles_are_refused() -> None:
    graph = chain(node("a", "log", message="a"), node("b", "log", message="b"))
    graph["edges"].append(edge("b", "a"))
    errors = graph_errors(graph)
    assert any(e["field"] == "edges" and "cycle" in e["message"] for e in errors)


def test_node_without_input_is_refused() -> None:
    graph = chain(node("a", "end"))
    graph["nodes"].append(node("orphan", "log", message="never"))
    assert errors_of(graph) == [("orphan", "edges")]


def test_config_is_checked_against_the_action_schema() -> None:
    assert errors_of(chain(node("t", "set_trait", value=1))) == [("t", "config.trait")]
    assert errors_of(chain(node("t", "set_trait", trait="a", value=1, colour="red"))) == [
        ("t", "config.colour")
    ]
    assert errors_of(chain(node("h", "http_request", url="ftp://x", method="GET"))) == [
        ("h", "config.url")
    ]
    assert errors_of(chain(node("h", "http_request", url="http://x", timeout="soon"))) == [
        ("h", "config.timeout")
    ]


def test_condition_filter_errors_name_the_leaf() -> None:
    bad = {
        "and": [
            {"property": "event.properties.plan", "operator": "is", "value": "a"},
            {"property": "traits.x", "operator": "nope"},
        ]
    }
    errors = graph_errors(chain(node("c", "condition", filter=bad)))
    assert [(e["node"], e["field"]) for e in errors] == [("c", "config.filter.and[1]")]


def test_template_syntax_errors_name_the_field() -> None:
    errors = errors_of(chain(node("t", "template", template="{{ event.name ", variable="v")))
    assert errors == [("t", "config.template")]


def test_bad_edges_name_the_missing_node() -> None:
    graph = chain(node("a", "end"))
    graph["edges"].append(edge("a", "ghost"))
    assert errors_of(graph) == [("a", "edges[1].to")]


def test_saving_an_invalid_draft_raises_with_all_errors(db: None) -> None:
    graph = chain(node("x", "teleport"), node("t", "set_trait", value=1))
    with pytest.raises(WorkflowInvalid) as info:
        services.workflow_create(name="bad", graph=graph)
    body = info.value.as_dict()["error"]
    assert body["code"] == "invalid_workflow"
    assert {(e["node"], e["field"]) for e in body["errors"]} == {
        ("x", "action"),
        ("t", "config.trait"),
    }
    assert info.value.status_code == 400


def test_shape_errors() -> None:
    assert (None, "nodes") in errors_of({"nodes": "x", "edges": []})
    assert errors_of({"nodes": []}) == [(None, None)]  # "edges" is a required property
    assert (
        graph_errors({"nodes": [{"id": "bad id!", "action": "start"}], "edges": []})[0]["field"]
        == "nodes[0].id"
    )
