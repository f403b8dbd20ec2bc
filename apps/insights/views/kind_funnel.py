"""The funnels page: ordered steps, conversion window, mode, exclusions, breakdown; a click on
a step lists the people who converted or dropped there."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from apps.insights.queries import FunnelQuery, funnel_people, run_funnel
from apps.insights.templatetags.insights_tags import duration
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


def _rows(params: QueryDict, names: tuple[str, ...]) -> list[dict[str, str]]:
    columns = {name: _many(params, name) for name in names}
    count = max((len(v) for v in columns.values()), default=0)
    return [
        {name: (values[i] if i < len(values) else "") for name, values in columns.items()}
        for i in range(count)
    ]


@register
class FunnelPage(InsightPage):
    kind = "funnel"
    title = "Funnel"
    template = "insights/funnel.html"
    views = ["funnel", "bar"]
    choices = {
        "modes": [
            ("ordered", "Ordered (other events allowed between steps)"),
            ("strict", "Strict (no other events between steps)"),
        ],
        "units": ["minute", "hour", "day", "week"],
        "breakdowns": [("event", "Event property (first touch)"), ("trait", "Trait")],
    }

    def has_input(self, params: QueryDict) -> bool:
        return len([s for s in _many(params, "step") if s]) >= 1

    def form(self, params: QueryDict) -> dict[str, Any]:
        form = super().form(params)
        steps = _rows(params, ("step", "step_filter"))
        while len(steps) < 2:
            steps.append({"step": "", "step_filter": ""})
        form["step_rows"] = steps
        form["exclusion_rows"] = _rows(
            params, ("exclude", "exclude_filter", "exclude_from", "exclude_to")
        )
        return form

    def query_from_params(self, params: QueryDict) -> dict[str, Any]:
        steps = []
        for row in _rows(params, ("step", "step_filter")):
            if not row["step"]:
                continue
            step: dict[str, Any] = {"event": row["step"]}
            if row["step_filter"]:
                step["filter"] = row["step_filter"]
            steps.append(step)
        query: dict[str, Any] = {
            "steps": steps,
            "window": {
                "value": _int(params, "window_value", 14),
                "unit": _one(params, "window_unit") or "day",
            },
            "mode": _one(params, "mode") or "ordered",
        }
        exclusions = []
        for row in _rows(params, ("exclude", "exclude_filter", "exclude_from", "exclude_to")):
            if not row["exclude"]:
                continue
            item: dict[str, Any] = {"event": row["exclude"]}
            if row["exclude_filter"]:
                item["filter"] = row["exclude_filter"]
            for name, key in (("from_step", "exclude_from"), ("to_step", "exclude_to")):
                if row[key]:
                    # The page numbers steps from 1; the query from 0.
                    item[name] = int(row[key]) - 1 if row[key].isdigit() else row[key]
            exclusions.append(item)
        if exclusions:
            query["exclusions"] = exclusions
        date_params(params, query)
        kind, key = _one(params, "breakdown_type"), _one(params, "breakdown_key")
        if kind:
            query["breakdown"] = {"type": kind, "key": key or None}
        if _one(params, "filter"):
            query["filter"] = _one(params, "filter")
        return query

    def params_from_query(self, query: dict[str, Any]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for step in query.get("steps") or []:
            out += [
                ("step", str(step.get("event", ""))),
                ("step_filter", str(step.get("filter") or "")),
            ]
        window = query.get("window") or {}
        out += [
            ("window_value", str(window.get("value", 14))),
            ("window_unit", str(window.get("unit", "day"))),
            ("mode", str(query.get("mode") or "ordered")),
        ]
        for item in query.get("exclusions") or []:
            out += [
                ("exclude", str(item.get("event", ""))),
                ("exclude_filter", str(item.get("filter") or "")),
                (
                    "exclude_from",
                    str(item["from_step"] + 1) if isinstance(item.get("from_step"), int) else "",
                ),
                (
                    "exclude_to",
                    str(item["to_step"] + 1) if isinstance(item.get("to_step"), int) else "",
                ),
            ]
        out += date_back(query)
        breakdown = query.get("breakdown") or {}
        if breakdown:
            out += [
                ("breakdown_type", str(breakdown.get("type", ""))),
                ("breakdown_key", str(breakdown.get("key") or "")),
            ]
        if query.get("filter"):
            out.append(("filter", str(query["filter"])))
        return out

    def run(self, query: dict[str, Any]) -> Any:
        return run_funnel(FunnelQuery.from_dict(query))

    def chart(self, result: Any, query: dict[str, Any]) -> dict[str, Any]:
        groups = result.breakdowns or [result.overall]
        steps = result.overall.steps
        x = [f"{s.index + 1}. {s.label}" for s in steps]
        series = []
        for group in groups:
            name = (
                "All people"
                if group.breakdown_value is None
                else (
                    "Other"
                    if group.breakdown_value == "$other"
                    else group.breakdown_value or "(none)"
                )
            )
            series.append(
                {
                    "name": name,
                    "data": [round(100 * s.conversion_from_first, 1) for s in group.steps],
                }
            )
        first = steps[0].count if steps else 0
        last = steps[-1].count if steps else 0
        return {
            "type": "funnel",
            "x": x,
            "series": series,
            "total": last,
            "description": f"Funnel of {len(steps)} steps: {first} people started, {last} "
            f"converted ({round(100 * last / first, 1) if first else 0}%).",
            "click": {"url": self.people_url(query) + "&at_step=__INDEX__&status=converted"},
        }

    def table(self, result: Any, query: dict[str, Any]) -> Table:
        header = [
            "Step",
            "People",
            "Conversion from first",
            "From previous",
            "Dropped",
            "Median time",
            "Average time",
        ]
        rows = []
        groups = [result.overall, *result.breakdowns]
        for group in groups:
            prefix = (
                "" if group.breakdown_value is None else f"[{group.breakdown_value or '(none)'}] "
            )
            for s in group.steps:
                rows.append(
                    [
                        f"{prefix}{s.index + 1}. {s.label}",
                        s.count,
                        f"{100 * s.conversion_from_first:.1f}%",
                        f"{100 * s.conversion_from_previous:.1f}%",
                        s.dropped,
                        duration(s.median_seconds),
                        duration(s.average_seconds),
                    ]
                )
        return Table(header=header, rows=rows)

    def people(self, query: dict[str, Any], params: QueryDict) -> tuple[str, list[str]]:
        step = _int(params, "at_step", 0)
        status = _one(params, "status") or "converted"
        step_no = step if isinstance(step, int) else 0
        ids = funnel_people(
            FunnelQuery.from_dict(query),
            step=step_no,
            status=status,
            breakdown_value=_one(params, "breakdown_value") or None,
        )
        verb = "reached" if status == "converted" else "dropped before"
        return f"People who {verb} step {step_no + 1}", ids
