"""Workflow graphs: the JSON shape, its validation and the lookups the engine needs.

    {"nodes": [{"id": "n1", "action": "condition", "config": {...}}, ...],
     "edges": [{"from": "n1", "port": "true", "to": "n2"}, ...]}

Valid means: exactly one `start` node, known actions, edges between known nodes leaving from
ports their action declares (or `error`), every node but start has an input edge (and start
none), no cycles, and each config valid against its action's schema and checks.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator, ValidationError

from apps.workflows.actions import action_class
from apps.workflows.templating import template_check, templates_in
from cdp.errors import DomainError

MAX_NODES = 200
_NODE_ID = r"^[A-Za-z0-9_\-]{1,100}$"

_SHAPE = Draft202012Validator(
    {
        "type": "object",
        "required": ["nodes", "edges"],
        "properties": {
            "nodes": {
                "type": "array",
                "maxItems": MAX_NODES,
                "items": {
                    "type": "object",
                    "required": ["id", "action"],
                    "properties": {
                        "id": {"type": "string", "pattern": _NODE_ID},
                        "action": {"type": "string"},
                        "config": {"type": "object"},
                        "position": {},
                        "label": {"type": "string"},
                    },
                },
            },
            "edges": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["from", "to"],
                    "properties": {
                        "from": {"type": "string"},
                        "port": {"type": "string"},
                        "to": {"type": "string"},
                    },
                },
            },
        },
    }
)


class WorkflowInvalid(DomainError):
    """The graph can't be saved: `errors` lists each problem as {node, field, message}."""

    status_code = 400
    code = "invalid_workflow"

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        first = errors[0]
        where = f"node {first['node']!r}: " if first.get("node") else ""
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{where}{first['message']}{more}", field=first.get("field"))

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        data["error"]["errors"] = self.errors
        return data


def _error(node: str | None, field: str | None, message: str) -> dict[str, Any]:
    return {"node": node, "field": field, "message": message}


def _json_path(parts: Any) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def graph_errors(graph: Any) -> list[dict[str, Any]]:
    """Every problem in the graph, each naming the node and the field at fault."""
    shape = sorted(_SHAPE.iter_errors(graph), key=lambda e: list(e.absolute_path))
    if shape:
        return [_error(None, _json_path(e.absolute_path) or None, e.message) for e in shape]
    errors: list[dict[str, Any]] = []
    nodes: dict[str, dict[str, Any]] = {}
    for index, node in enumerate(graph["nodes"]):
        node_id = node["id"]
        if node_id in nodes:
            errors.append(_error(node_id, f"nodes[{index}].id", "duplicate node id"))
            continue
        nodes[node_id] = node
        errors.extend(_node_errors(node_id, node))
    starts = [n for n in nodes.values() if n["action"] == "start"]
    if len(starts) != 1:
        errors.append(
            _error(
                None,
                "nodes",
                f"a workflow has exactly one start node, this one has {len(starts)}",
            )
        )
    inputs: dict[str, int] = defaultdict(int)
    outgoing: dict[str, list[str]] = defaultdict(list)
    seen: set[tuple[str, str, str]] = set()
    for index, edge in enumerate(graph["edges"]):
        source, target = edge["from"], edge["to"]
        port = edge.get("port", "out")
        if source not in nodes:
            errors.append(_error(source, f"edges[{index}].from", f"no node {source!r}"))
            continue
        if target not in nodes:
            errors.append(_error(source, f"edges[{index}].to", f"no node {target!r}"))
            continue
        cls = action_class(nodes[source]["action"])
        if cls is not None and port not in cls.all_ports():
            errors.append(
                _error(
                    source,
                    f"edges[{index}].port",
                    f"{nodes[source]['action']} has no port {port!r} "
                    f"(ports: {', '.join(cls.all_ports())})",
                )
            )
        if (source, port, target) in seen:
            errors.append(_error(source, f"edges[{index}]", "duplicate edge"))
        seen.add((source, port, target))
        inputs[target] += 1
        outgoing[source].append(target)
    for node_id, node in nodes.items():
        if node["action"] == "start" and inputs[node_id]:
            errors.append(_error(node_id, "edges", "the start node can't have an input edge"))
        elif node["action"] != "start" and not inputs[node_id]:
            errors.append(_error(node_id, "edges", "node has no input edge: it would never run"))
    cycle = _find_cycle(nodes, outgoing)
    if cycle:
        errors.append(_error(cycle[0], "edges", "cycle: " + " -> ".join(cycle)))
    return errors


def _node_errors(node_id: str, node: dict[str, Any]) -> list[dict[str, Any]]:
    cls = action_class(node["action"])
    if cls is None:
        return [_error(node_id, "action", f"unknown action {node['action']!r}")]
    config = node.get("config") or {}
    errors = [
        _error(node_id, _json_path(["config", *_field_of(e)]), e.message)
        for e in _validator(orjson.dumps(cls.config_schema).decode()).iter_errors(config)
    ]
    if errors:
        return errors
    errors.extend(
        _error(node_id, f"config.{field}", message) for field, message in cls.check_config(config)
    )
    if cls.templated:
        for path, source in templates_in(config):
            problem = template_check(source)
            if problem:
                errors.append(_error(node_id, f"config.{path}", problem))
    return errors


def _field_of(error: ValidationError) -> list[Any]:
    """The path of the field at fault; for a missing or unexpected key, that key."""
    path = list(error.absolute_path)
    instance = error.instance if isinstance(error.instance, dict) else {}
    if error.validator == "required":
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [key for key in required if key not in instance]
        return path + missing[:1]
    if error.validator == "additionalProperties":
        allowed = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = [key for key in instance if key not in allowed]
        return path + extra[:1]
    return path


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(orjson.loads(schema_json))


def _find_cycle(nodes: dict[str, Any], outgoing: dict[str, list[str]]) -> list[str]:
    """A cycle as a node path (first node repeated at the end), or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in nodes:
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node_id, index = stack.pop()
            if index == 0:
                state[node_id] = 1
                path.append(node_id)
            children = outgoing.get(node_id, [])
            if index < len(children):
                stack.append((node_id, index + 1))
                child = children[index]
                if state.get(child) == 1:
                    return [*path[path.index(child) :], child]
                if child not in state:
                    stack.append((child, 0))
            else:
                state[node_id] = 2
                path.pop()
    return []


def graph_validate(graph: Any) -> dict[str, Any]:
    """The graph, when valid; else WorkflowInvalid with all its errors."""
    errors = graph_errors(graph)
    if errors:
        raise WorkflowInvalid(errors)
    return graph


@dataclass(frozen=True, slots=True)
class Graph:
    """A validated graph indexed for the engine."""

    nodes: dict[str, dict[str, Any]]
    # (node id, port) -> the nodes that edge leads to
    edges: dict[tuple[str, str], tuple[str, ...]]
    start: str

    def next_nodes(self, node_id: str, port: str) -> tuple[str, ...]:
        return self.edges.get((node_id, port), ())


def graph_compile(graph: dict[str, Any]) -> Graph:
    targets: dict[tuple[str, str], list[str]] = defaultdict(list)
    for edge in graph["edges"]:
        targets[(edge["from"], edge.get("port", "out"))].append(edge["to"])
    nodes = {node["id"]: node for node in graph["nodes"]}
    start = next(n["id"] for n in graph["nodes"] if n["action"] == "start")
    return Graph(
        nodes=nodes, edges={key: tuple(value) for key, value in targets.items()}, start=start
    )
