"""The trends page: series of events over time, with math, breakdown and comparison."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from apps.insights.queries.trends import TrendsQuery, TrendsRunner
from apps.insights.views.kinds import (
    InsightPage,
    Table,
    _many,
    _one,
    breakdown_back,
    breakdown_params,
    date_back,
    date_params,
    register,
)


def _label(day: str, interval: str) -> str:
    if interval == "hour":
        return day[:16].replace("T", " ")
    if interval == "month":
        return day[:7]
    return day[:10]


def _number(value: float) -> float | int:
    """Whole numbers without a decimal point (counts), others to two places."""
    return int(value) if float(value).is_integer() else round(value, 2)


@register
class TrendsPage(InsightPage):
    kind = "trends"
    title = "Trends"
    template = "insights/trends.html"
    views = ["line", "bar", "area", "number"]

    choices = {
        "maths": [
            ("total", "Total events"),
            ("unique_people", "Unique people"),
            ("sum", "Sum of property"),
            ("avg", "Average of property"),
            ("min", "Minimum of property"),
            ("max", "Maximum of property"),
            ("median", "Median of property"),
        ],
        "intervals": ["hour", "day", "week", "month"],
        "breakdowns": [
            ("event", "Event property"),
            ("trait", "Trait"),
            ("group", "Group"),
            ("segment", "Segment"),
            ("score", "Predictive score (tenths; key: its name)"),
        ],
    }

    def has_input(self, params: QueryDict) -> bool:
        return any(_many(params, "event"))

    def form(self, params: QueryDict) -> dict[str, Any]:
        form = super().form(params)
        events = _many(params, "event") or [_one(params, "event")]
        columns = {name: _many(params, name) for name in ("math", "property", "series_filter")}

        def at(name: str, index: int) -> str:
            values = columns[name]
            return values[index] if index < len(values) else ""

        form["series_rows"] = [
            {
                "event": event,
                "math": at("math", i) or "total",
                "property": at("property", i),
                "filter": at("series_filter", i),
            }
            for i, event in enumerate(events)
        ]
        return form

    def query_from_params(self, params: QueryDict) -> dict[str, Any]:
        events = _many(params, "event")
        maths = _many(params, "math")
        props = _many(params, "property")
        filters = _many(params, "series_filter")
        series = []
        for index, event in enumerate(events):
            if not event:
                continue
            item: dict[str, Any] = {"event": event}
            math = maths[index] if index < len(maths) and maths[index] else "total"
            item["math"] = math
            if index < len(props) and props[index] and math not in ("total", "unique_people"):
                item["property"] = props[index]
            if index < len(filters) and filters[index]:
                item["filter"] = filters[index]
            series.append(item)
        query: dict[str, Any] = {"series": series, "interval": _one(params, "interval") or "day"}
        date_params(params, query)
        breakdown_params(params, query)
        if _one(params, "compare"):
            query["compare"] = True
        if _one(params, "filter"):
            query["filter"] = _one(params, "filter")
        return query

    def params_from_query(self, query: dict[str, Any]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for item in query.get("series") or []:
            out += [
                ("event", str(item.get("event", ""))),
                ("math", str(item.get("math") or "total")),
                ("property", str(item.get("property") or "")),
                ("series_filter", str(item.get("filter") or "")),
            ]
        out.append(("interval", str(query.get("interval") or "day")))
        out += date_back(query) + breakdown_back(query)
        if query.get("compare"):
            out.append(("compare", "1"))
        if query.get("filter"):
            out.append(("filter", str(query["filter"])))
        return out

    def run(self, query: dict[str, Any]) -> Any:
        return TrendsRunner(TrendsQuery.from_dict(query)).run()

    def _name(self, line: Any) -> str:
        # The runner's label names the breakdown value already ("page_view - /pricing").
        name = str(line.label).replace(" - $other", " - Other")
        if line.compare == "previous":
            name = f"{name} (previous period)"
        return name

    def chart(self, result: Any, query: dict[str, Any]) -> dict[str, Any]:
        lines = result.lines
        current = next((line for line in lines if line.compare != "previous"), None)
        x = [_label(day, result.interval) for day in (current.days if current else [])]
        series = [
            {"name": self._name(line), "data": line.data, "dashed": line.compare == "previous"}
            for line in lines
        ]
        total = sum(line.total for line in lines if line.compare != "previous")
        names = ", ".join(sorted({line.label for line in lines})) or "no series"
        return {
            "type": "line",
            "x": x,
            "series": series,
            "total": round(total, 2),
            "description": f"Trend of {names} per {result.interval}, {len(lines)} line(s), "
            f"total {round(total, 2)}.",
        }

    def table(self, result: Any, query: dict[str, Any]) -> Table:
        lines = result.lines
        current = next((line for line in lines if line.compare != "previous"), None)
        days = [_label(day, result.interval) for day in (current.days if current else [])]
        rows = [[self._name(line), _number(line.total), *map(_number, line.data)] for line in lines]
        return Table(header=["Series", "Total", *days], rows=rows)
