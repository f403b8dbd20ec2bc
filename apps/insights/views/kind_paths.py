"""The paths page: the most common paths after a start point or before an end point, as a
Sankey diagram (page_view events stand for their page path)."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from apps.insights.queries import PathsQuery, run_paths
from apps.insights.views.kinds import (
    InsightPage,
    Table,
    _int,
    _many,
    _one,
    date_back,
    date_params,
    register,
)


@register
class PathsPage(InsightPage):
    kind = "paths"
    title = "Paths"
    template = "insights/paths.html"
    views = ["sankey"]

    def has_input(self, params: QueryDict) -> bool:
        return bool(_one(params, "start_point") or _one(params, "end_point") or _one(params, "go"))

    def query_from_params(self, params: QueryDict) -> dict[str, Any]:
        query: dict[str, Any] = {"steps": _int(params, "steps", 5)}
        point = _one(params, "point")
        if _one(params, "start_point"):
            query["start_point"] = _one(params, "start_point")
        if _one(params, "end_point"):
            query["end_point"] = _one(params, "end_point")
        if point == "pages":
            query["event_names"] = ["page_view"]
        names = [n for n in _many(params, "event_names") if n]
        if names:
            query["event_names"] = names
        date_params(params, query, default_from="-7d")
        if _one(params, "filter"):
            query["filter"] = _one(params, "filter")
        return query

    def params_from_query(self, query: dict[str, Any]) -> list[tuple[str, str]]:
        out = [("steps", str(query.get("steps") or 5)), ("go", "1")]
        for name in ("start_point", "end_point"):
            if query.get(name):
                out.append((name, str(query[name])))
        out += [("event_names", str(n)) for n in query.get("event_names") or []]
        out += date_back(query)
        if query.get("filter"):
            out.append(("filter", str(query["filter"])))
        return out

    def run(self, query: dict[str, Any]) -> Any:
        return run_paths(PathsQuery.from_dict(query))

    def chart(self, result: Any, query: dict[str, Any]) -> dict[str, Any]:
        nodes = [{"name": n["name"], "value": n.get("value")} for n in result.nodes]
        links = [dict(link) for link in result.links]
        top = sorted(links, key=lambda link: -link["value"])[:3]
        described = "; ".join(
            f"{_item(link['source'])} → {_item(link['target'])} ({link['value']})" for link in top
        )
        return {
            "type": "sankey",
            "nodes": nodes,
            "links": links,
            "total": sum(link["value"] for link in links),
            "description": f"Paths of {len(nodes)} steps and {len(links)} links; most common: "
            f"{described or 'none'}.",
        }

    def table(self, result: Any, query: dict[str, Any]) -> Table:
        rows = [
            [
                f"{_item(link['source'])} → {_item(link['target'])}",
                _step(link["source"]),
                link["value"],
            ]
            for link in sorted(result.links, key=lambda link: (-link["value"], link["source"]))
        ]
        return Table(header=["Link", "Step", "Sessions"], rows=rows)


def _item(name: str) -> str:
    """A node is named "<step>_<item>" so that the same page at two steps is two nodes."""
    return name.split("_", 1)[1] if "_" in name else name


def _step(name: str) -> str:
    return name.split("_", 1)[0]
