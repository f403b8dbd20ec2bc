"""A workflow graph drawn as SVG: boxes per node (action and id) with their output ports,
edges labelled by port, laid out in layers by the longest path from the start.

It draws whatever the JSON holds, an invalid draft included (unknown actions and ports, edges
to missing nodes, cycles), so the admin can show what is wrong; nodes named in `errors` are
outlined in red.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

BOX_MIN_WIDTH = 170
PORT_WIDTH = 70
BOX_HEIGHT = 64
H_GAP = 40
V_GAP = 70
DUMMY_WIDTH = 16
LANE_GAP = 14
MARGIN = 20
MAX_LABEL = 24
ORDER_SWEEPS = 4
ERROR_PORT = "error"


@dataclass
class _Node:
    id: str
    action: str
    config: Any
    ports: list[str]
    known_action: bool
    unknown_ports: set[str] = field(default_factory=set)
    layer: int = 0
    order: float = 0.0
    x: float = 0.0
    y: float = 0.0
    dummy: bool = False  # a placeholder an edge passes through (see _add_dummies)

    @property
    def width(self) -> float:
        if self.dummy:
            return DUMMY_WIDTH
        return max(BOX_MIN_WIDTH, PORT_WIDTH * len(self.ports))

    @property
    def center(self) -> float:
        return self.x + self.width / 2

    def port_x(self, port: str) -> float:
        index = self.ports.index(port)
        return self.x + self.width * (index + 0.5) / len(self.ports)


@dataclass(frozen=True)
class _Edge:
    source: str
    port: str
    target: str


def _text(value: Any, limit: int = MAX_LABEL) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _parse(
    graph: Any, action_ports: Mapping[str, Sequence[str]] | None
) -> tuple[dict[str, _Node], list[_Edge]]:
    """The drawable nodes and edges; malformed entries are skipped (validation reports them)."""
    graph = graph if isinstance(graph, dict) else {}
    raw_nodes = graph.get("nodes") if isinstance(graph.get("nodes"), list) else []
    raw_edges = graph.get("edges") if isinstance(graph.get("edges"), list) else []
    nodes: dict[str, _Node] = {}
    for raw in raw_nodes:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str | int):
            continue
        node_id = str(raw["id"])
        if node_id in nodes:
            continue
        action = str(raw.get("action", ""))
        declared = action_ports.get(action) if action_ports is not None else None
        nodes[node_id] = _Node(
            id=node_id,
            action=action,
            config=raw.get("config"),
            ports=list(declared) if declared is not None else [],
            known_action=declared is not None or action_ports is None,
        )
    edges: list[_Edge] = []
    for raw in raw_edges:
        if not isinstance(raw, dict):
            continue
        source, target = str(raw.get("from", "")), str(raw.get("to", ""))
        port = str(raw.get("port") or "out")
        if source not in nodes or target not in nodes:
            continue
        edge = _Edge(source, port, target)
        if edge in edges:
            continue
        edges.append(edge)
        node = nodes[source]
        if port not in node.ports:
            node.ports.append(port)
            declared = action_ports.get(node.action) if action_ports is not None else None
            if port != ERROR_PORT and declared is not None and port not in declared:
                node.unknown_ports.add(port)
    return nodes, edges


def _back_edges(nodes: dict[str, _Node], edges: list[_Edge]) -> list[_Edge]:
    """The edges that close a cycle, found by a depth-first search from the start node (then
    from nodes without inputs, then the rest): drawn, but not used for layering."""
    outgoing: dict[str, list[_Edge]] = {node_id: [] for node_id in nodes}
    has_input: set[str] = set()
    for edge in edges:
        outgoing[edge.source].append(edge)
        has_input.add(edge.target)
    roots = sorted(nodes, key=lambda n: (nodes[n].action != "start", n in has_input))
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    back: list[_Edge] = []
    for root in roots:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(outgoing[root]))]
        while stack:
            node_id, pending = stack[-1]
            step = next(pending, None)
            if step is None:
                state[node_id] = 2
                stack.pop()
            elif state.get(step.target) == 1:
                back.append(step)
            elif step.target not in state:
                state[step.target] = 1
                stack.append((step.target, iter(outgoing[step.target])))
    return back


def _assign_layers(nodes: dict[str, _Node], edges: list[_Edge]) -> None:
    """Layer = the longest path from a node without inputs (`edges` hold no cycle)."""
    incoming: dict[str, list[_Edge]] = {node_id: [] for node_id in nodes}
    for edge in edges:
        incoming[edge.target].append(edge)
    placed: set[str] = set()
    pending = list(nodes)
    while pending:
        ready = [n for n in pending if all(e.source in placed for e in incoming[n])]
        for node_id in ready:
            inputs = incoming[node_id]
            nodes[node_id].layer = max((nodes[e.source].layer + 1 for e in inputs), default=0)
            placed.add(node_id)
        pending = [n for n in pending if n not in placed]


def _add_dummies(nodes: dict[str, _Node], edges: list[_Edge]) -> dict[_Edge, list[_Node]]:
    """An edge spanning several layers passes through a thin placeholder in each layer between,
    so that it is routed around the nodes there instead of through them."""
    routes: dict[_Edge, list[_Node]] = {}
    for index, edge in enumerate(edges):
        source, target = nodes[edge.source], nodes[edge.target]
        chain = []
        for layer in range(source.layer + 1, target.layer):
            dummy = _Node(
                id=f"{index}:{layer}",
                action="",
                config=None,
                ports=["out"],
                known_action=True,
                layer=layer,
                dummy=True,
            )
            chain.append(dummy)
        routes[edge] = chain
    return routes


def _order_layers(
    nodes: dict[str, _Node], edges: list[_Edge], routes: dict[_Edge, list[_Node]]
) -> list[list[_Node]]:
    """Order each layer by the mean position of its parents (barycenter), a few sweeps."""
    units = [*nodes.values(), *(d for chain in routes.values() for d in chain)]
    depth = max((n.layer for n in units), default=-1) + 1
    layers: list[list[_Node]] = [[] for _ in range(depth)]
    for unit in units:
        layers[unit.layer].append(unit)
    for layer in layers:
        for index, unit in enumerate(layer):
            unit.order = index
    # Each unit's parents, as (parent, where along the parent's bottom side the edge leaves).
    parents: dict[int, list[tuple[_Node, float]]] = {id(u): [] for u in units}
    for edge in edges:
        source = nodes[edge.source]
        previous, offset = source, source.ports.index(edge.port) / (len(source.ports) + 1)
        for unit in [*routes[edge], nodes[edge.target]]:
            parents[id(unit)].append((previous, offset))
            previous, offset = unit, 0.0
    for _ in range(ORDER_SWEEPS):
        for layer in layers[1:]:
            for unit in layer:
                positions = [parent.order + offset for parent, offset in parents[id(unit)]]
                if positions:
                    unit.order = sum(positions) / len(positions)
            layer.sort(key=lambda n: n.order)
            for index, unit in enumerate(layer):
                unit.order = index
    return layers


def _place(layers: list[list[_Node]]) -> tuple[float, float]:
    widths = [sum(n.width for n in layer) + H_GAP * (len(layer) - 1) for layer in layers]
    total_width = max(widths, default=0)
    for depth, (layer, width) in enumerate(zip(layers, widths, strict=True)):
        x = MARGIN + (total_width - width) / 2
        for node in layer:
            node.x = x
            node.y = MARGIN + depth * (BOX_HEIGHT + V_GAP)
            x += node.width + H_GAP
    height = len(layers) * BOX_HEIGHT + max(len(layers) - 1, 0) * V_GAP
    return total_width + 2 * MARGIN, height + 2 * MARGIN


def _node_svg(node: _Node, failing: bool, ran: bool) -> str:
    classes = ["node"]
    if not node.known_action:
        classes.append("unknown-action")
    if failing:
        classes.append("invalid")
    if ran:
        classes.append("ran")
    stroke = "#ba2121" if failing or not node.known_action else ("#2e7d32" if ran else "#417690")
    fill = "#edf7ee" if ran else "#f8fbfd"
    dash = ' stroke-dasharray="5 3"' if not node.known_action else ""
    config = json.dumps(node.config, default=str, sort_keys=True)
    parts = [
        f'<g class="{" ".join(classes)}" data-node="{escape(node.id)}">',
        f"<title>{escape(node.id)} ({escape(node.action)}): {escape(_text(config, 300))}</title>",
        f'<rect x="{node.x:.1f}" y="{node.y:.1f}" width="{node.width:.1f}" '
        f'height="{BOX_HEIGHT}" rx="6" fill="{fill}" stroke="{stroke}" stroke-width="1.5"{dash}/>',
        f'<text x="{node.x + node.width / 2:.1f}" y="{node.y + 20:.1f}" text-anchor="middle" '
        f'font-weight="bold" class="action">{escape(_text(node.action or "?"))}</text>',
        f'<text x="{node.x + node.width / 2:.1f}" y="{node.y + 36:.1f}" text-anchor="middle" '
        f'fill="#666" class="node-id">{escape(_text(node.id))}</text>',
    ]
    bottom = node.y + BOX_HEIGHT
    for port in node.ports:
        x = node.port_x(port)
        color = "#ba2121" if port in node.unknown_ports or port == ERROR_PORT else "#417690"
        parts.append(
            f'<g class="port" data-port="{escape(port)}">'
            f'<circle cx="{x:.1f}" cy="{bottom:.1f}" r="4" fill="{color}"/>'
            f'<text x="{x:.1f}" y="{bottom - 8:.1f}" text-anchor="middle" font-size="10" '
            f'fill="{color}">{escape(_text(port, 12))}</text></g>'
        )
    parts.append("</g>")
    return "".join(parts)


def _curve(x1: float, y1: float, x2: float, y2: float) -> str:
    bend = (y2 - y1) / 2
    return f" C{x1:.1f},{y1 + bend:.1f} {x2:.1f},{y2 - bend:.1f} {x2:.1f},{y2:.1f}"


def _edge_path(
    edge: _Edge,
    nodes: dict[str, _Node],
    route: list[_Node] | None,
    entry_x: float,
    lane_x: float,
) -> tuple[str, float, float]:
    """The path of an edge and where its label goes. A forward edge curves from the port down
    through its placeholders; a back edge (closing a cycle) runs up a lane right of the graph."""
    source, target = nodes[edge.source], nodes[edge.target]
    x, y = source.port_x(edge.port), source.y + BOX_HEIGHT
    x2, y2 = entry_x, target.y
    path = f"M{x:.1f},{y:.1f}"
    if route is None:
        below, above = y + V_GAP / 4, y2 - V_GAP / 4
        path += (
            f" L{x:.1f},{below:.1f} L{lane_x:.1f},{below:.1f} L{lane_x:.1f},{above:.1f}"
            f" L{x2:.1f},{above:.1f} L{x2:.1f},{y2:.1f}"
        )
        return path, (x + lane_x) / 2, below - 4
    label = (x + (route[0].center if route else x2)) / 2, y + V_GAP / 2
    for dummy in route:
        path += _curve(x, y, dummy.center, dummy.y)
        x, y = dummy.center, dummy.y + BOX_HEIGHT
        path += f" L{x:.1f},{y:.1f}"
    return path + _curve(x, y, x2, y2), label[0], label[1]


def _edges_svg(
    nodes: dict[str, _Node],
    edges: list[_Edge],
    routes: dict[_Edge, list[_Node]],
    lanes_from: float,
    fired: Collection[tuple[str, str]],
) -> str:
    # Spread the edges entering a node along its top side, in the order they come from.
    arrivals: dict[str, list[_Edge]] = {}
    for edge in edges:
        arrivals.setdefault(edge.target, []).append(edge)
    entry: dict[_Edge, float] = {}
    for target_id, into in arrivals.items():
        target = nodes[target_id]

        def coming_from(edge: _Edge) -> float:
            route = routes.get(edge)
            if route is None:
                return float("inf")  # back edges arrive from the lanes on the right
            return route[-1].center if route else nodes[edge.source].port_x(edge.port)

        into.sort(key=coming_from)
        for index, edge in enumerate(into):
            entry[edge] = target.x + target.width * (index + 1) / (len(into) + 1)
    parts = []
    lane = 0
    for edge in edges:
        back = edge not in routes
        lane_x = lanes_from + LANE_GAP * lane
        lane += back
        path, label_x, label_y = _edge_path(edge, nodes, routes.get(edge), entry[edge], lane_x)
        went = (edge.source, edge.port) in fired
        color = "#ba2121" if back or edge.port == ERROR_PORT else ("#2e7d32" if went else "#555")
        classes = "edge" + (" back-edge" if back else "") + (" fired" if went else "")
        parts.append(
            f'<g class="{classes}" data-from="{escape(edge.source)}" '
            f'data-port="{escape(edge.port)}" data-to="{escape(edge.target)}">'
            f"<title>{escape(edge.source)} [{escape(edge.port)}] \u2192 {escape(edge.target)}"
            f"{' (closes a cycle)' if back else ''}</title>"
            f'<path d="{path}" fill="none" stroke="{color}" stroke-width="{2.5 if went else 1.5}" '
            'marker-end="url(#wf-arrow)"/>'
            f'<text x="{label_x:.1f}" y="{label_y + 4:.1f}" text-anchor="middle" font-size="10" '
            f'fill="{color}" stroke="#fff" stroke-width="3" paint-order="stroke" '
            f'class="edge-label">{escape(_text(edge.port, 16))}</text></g>'
        )
    return "".join(parts)


def graph_svg(
    graph: Any,
    *,
    action_ports: Mapping[str, Sequence[str]] | None = None,
    errors: Collection[str] = (),
    ran: Collection[str] = (),
    fired: Collection[tuple[str, str]] = (),
) -> str:
    """The SVG markup of a workflow graph.

    `action_ports` maps each known action to its declared output ports; without it (and for
    unknown actions), ports come from the edges. `errors` holds ids of nodes to outline as
    invalid; `ran` the nodes a run executed and `fired` the (node, port) pairs it fired, drawn
    in green."""
    nodes, edges = _parse(graph, action_ports)
    if nodes:
        back = _back_edges(nodes, edges)
        forward = [e for e in edges if e not in back]
        _assign_layers(nodes, forward)
        routes = _add_dummies(nodes, forward)
        width, height = _place(_order_layers(nodes, forward, routes))
        lanes_from = width - MARGIN + LANE_GAP
        width += LANE_GAP * len(back)
        body = _edges_svg(nodes, edges, routes, lanes_from, fired) + "".join(
            _node_svg(n, n.id in errors, n.id in ran) for n in nodes.values()
        )
    else:
        width, height = 240, 60
        body = '<text x="20" y="35" fill="#666">The graph has no nodes.</text>'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="workflow-graph" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        'font-family="sans-serif" font-size="12" role="img" aria-label="Workflow graph">'
        '<defs><marker id="wf-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/>'
        "</marker></defs>"
        f"{body}</svg>"
    )
