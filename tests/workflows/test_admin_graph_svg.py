"""The workflow picture: nodes in layers by longest path, ports from the registry or the edges,
edges labelled by port, and invalid drafts (cycles, unknown actions, dangling edges) drawn."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET

from apps.workflows.graph_svg import graph_svg

SVG = "{http://www.w3.org/2000/svg}"
PORTS = {
    "start": ("out",),
    "condition": ("true", "false"),
    "set_trait": ("out",),
    "http_request": ("success", "error"),
    "end": (),
}


def _graph(*nodes: tuple[str, str], edges: list[tuple[str, str, str]]) -> dict:
    return {
        "nodes": [{"id": i, "action": a, "config": {}} for i, a in nodes],
        "edges": [{"from": f, "port": p, "to": t} for f, p, t in edges],
    }


BRANCHY = _graph(
    ("start", "start"),
    ("is_pro", "condition"),
    ("tag", "set_trait"),
    ("call", "http_request"),
    ("done", "end"),
    edges=[
        ("start", "out", "is_pro"),
        ("is_pro", "true", "tag"),
        ("is_pro", "false", "call"),
        ("tag", "out", "done"),
        ("call", "success", "done"),
    ],
)


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _boxes(root: ET.Element) -> dict[str, tuple[float, float]]:
    out = {}
    for group in root.iter(f"{SVG}g"):
        if "node" in group.get("class", "").split():
            rect = group.find(f"{SVG}rect")
            assert rect is not None
            out[group.get("data-node")] = (float(rect.get("x")), float(rect.get("y")))
    return out


def test_nodes_ports_and_edge_labels_are_drawn():
    svg = graph_svg(BRANCHY, action_ports=PORTS)
    root = _parse(svg)

    assert root.tag == f"{SVG}svg"
    assert set(_boxes(root)) == {"start", "is_pro", "tag", "call", "done"}
    texts = [t.text for t in root.iter(f"{SVG}text")]
    for label in ("condition", "http_request", "is_pro", "true", "false", "success", "error"):
        assert label in texts, label
    edges = [
        (g.get("data-from"), g.get("data-port"), g.get("data-to"))
        for g in root.iter(f"{SVG}g")
        if g.get("class", "").startswith("edge")
    ]
    assert ("is_pro", "false", "call") in edges
    assert len(edges) == 5
    labels = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "edge-label"]
    assert sorted(labels) == ["false", "out", "out", "success", "true"]


def test_layers_follow_the_longest_path_from_start():
    graph = _graph(
        ("start", "start"),
        ("a", "set_trait"),
        ("b", "set_trait"),
        ("c", "set_trait"),
        edges=[("start", "out", "a"), ("a", "out", "b"), ("start", "out", "c"), ("b", "out", "c")],
    )
    boxes = _boxes(_parse(graph_svg(graph, action_ports=PORTS)))

    ys = sorted({y for _, y in boxes.values()})
    assert [boxes[n][1] for n in ("start", "a", "b", "c")] == ys  # c sits below b, not beside a


def test_siblings_share_a_layer_and_do_not_overlap():
    boxes = _boxes(_parse(graph_svg(BRANCHY, action_ports=PORTS)))

    assert boxes["tag"][1] == boxes["call"][1]
    assert boxes["tag"][0] < boxes["call"][0]  # the true branch is left of the false one
    assert boxes["done"][1] > boxes["tag"][1]


def test_without_the_registry_ports_come_from_the_edges():
    root = _parse(graph_svg(BRANCHY))

    ports = {g.get("data-port") for g in root.iter(f"{SVG}g") if g.get("class") == "port"}
    assert ports == {"out", "true", "false", "success"}


def test_invalid_drafts_still_draw():
    graph = _graph(
        ("start", "start"),
        ("a", "no_such_action"),
        ("b", "condition"),
        edges=[
            ("start", "out", "a"),
            ("a", "out", "b"),
            ("b", "maybe", "a"),  # a cycle, through a port condition doesn't have
            ("b", "true", "ghost"),  # to a missing node: not drawn
        ],
    )
    graph["nodes"].append({"action": "log"})  # no id: skipped
    svg = graph_svg(graph, action_ports=PORTS, errors={"b"})
    root = _parse(svg)

    assert set(_boxes(root)) == {"start", "a", "b"}
    classes = {g.get("data-node"): g.get("class") for g in root.iter(f"{SVG}g")}
    assert "unknown-action" in classes["a"]
    assert "invalid" in classes["b"]
    assert 'class="edge back-edge"' in svg
    assert "ghost" not in svg


def test_text_is_escaped():
    graph = {"nodes": [{"id": "x", "action": '<script>alert("x")</script>'}], "edges": []}

    svg = graph_svg(graph, action_ports=PORTS)

    assert "<script>" not in svg
    _parse(svg)  # still well-formed


def test_garbage_and_empty_graphs():
    for graph in (None, [], {"nodes": "x"}, {"nodes": [], "edges": []}):
        svg = graph_svg(graph, action_ports=PORTS)
        assert "no nodes" in svg
        _parse(svg)


def test_large_graphs_lay_out_without_overlap():
    nodes = [("start", "start")] + [(f"n{i}", "condition") for i in range(30)]
    edges = [("start", "out", "n0")]
    for i in range(1, 30):
        edges.append((f"n{(i - 1) // 2}", "true" if i % 2 else "false", f"n{i}"))
    boxes = _boxes(_parse(graph_svg(_graph(*nodes, edges=edges), action_ports=PORTS)))

    by_row: dict[float, list[float]] = {}
    for x, y in boxes.values():
        by_row.setdefault(y, []).append(x)
    for xs in by_row.values():
        xs.sort()
        assert all(b - a >= 170 for a, b in itertools.pairwise(xs))
    assert re.search(r'width="\d+"', graph_svg(_graph(*nodes, edges=edges)))


def test_an_edge_skipping_a_layer_is_routed_around_the_node_there():
    graph = _graph(
        ("start", "start"),
        ("a", "set_trait"),
        ("b", "set_trait"),
        edges=[("start", "out", "a"), ("a", "out", "b"), ("start", "out", "b")],
    )
    root = _parse(graph_svg(graph, action_ports=PORTS))
    a_x, _ = _boxes(root)["a"]
    skip = next(
        g for g in root.iter(f"{SVG}g") if g.get("data-to") == "b" and g.get("data-from") == "start"
    )
    path = skip.find(f"{SVG}path").get("d")

    # Through a placeholder beside `a`: a straight stretch down, left or right of a's box.
    through = [float(x) for x in re.findall(r"L([\d.]+),", path)]
    assert len(through) == 1
    assert not a_x <= through[0] <= a_x + 170
