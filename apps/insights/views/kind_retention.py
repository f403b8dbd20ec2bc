"""The retention page: cohorts by start event, share who return in each later period, as a
heatmap and the average curve; a click on a cell lists its people."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from apps.insights.queries import RetentionQuery, retention_people, run_retention
from apps.insights.views.kinds import (
    InsightPage,
    Table,
    _int,
    _one,
    date_back,
    register,
)


@register
class RetentionPage(InsightPage):
    kind = "retention"
    title = "Retention"
    template = "insights/retention.html"
    views = ["heatmap", "line"]
    choices = {
        "types": [
            ("first_time", "First time (cohort of first start)"),
            ("recurring", "Recurring (every start)"),
        ],
        "periods": ["day", "week", "month"],
    }

    def has_input(self, params: QueryDict) -> bool:
        return bool(_one(params, "start_event"))

    def query_from_params(self, params: QueryDict) -> dict[str, Any]:
        start: dict[str, Any] = {"event": _one(params, "start_event")}
        back: dict[str, Any] = {
            "event": _one(params, "return_event") or _one(params, "start_event")
        }
        if _one(params, "start_filter"):
            start["filter"] = _one(params, "start_filter")
        if _one(params, "return_filter"):
            back["filter"] = _one(params, "return_filter")
        query: dict[str, Any] = {
            "start": start,
            "return": back,
            "retention_type": _one(params, "retention_type") or "first_time",
            "period": _one(params, "period") or "week",
            "periods": _int(params, "periods", 8),
            "date_from": _one(params, "date_from") or "-8w",
        }
        if _one(params, "date_to"):
            query["date_to"] = _one(params, "date_to")
        if _one(params, "filter"):
            query["filter"] = _one(params, "filter")
        return query

    def params_from_query(self, query: dict[str, Any]) -> list[tuple[str, str]]:
        start = query.get("start") or {}
        back = query.get("return") or {}
        out = [
            ("start_event", str(start.get("event", ""))),
            ("start_filter", str(start.get("filter") or "")),
            ("return_event", str(back.get("event", ""))),
            ("return_filter", str(back.get("filter") or "")),
            ("retention_type", str(query.get("retention_type") or "first_time")),
            ("period", str(query.get("period") or "week")),
            ("periods", str(query.get("periods") or 8)),
            *date_back(query),
        ]
        if query.get("filter"):
            out.append(("filter", str(query["filter"])))
        return out

    def run(self, query: dict[str, Any]) -> Any:
        return run_retention(RetentionQuery.from_dict(query))

    def _width(self, result: Any, query: dict[str, Any]) -> int:
        periods = query.get("periods")
        width = max((len(c.values) for c in result.cohorts), default=0)
        return max(width, periods if isinstance(periods, int) else 0)

    def chart(self, result: Any, query: dict[str, Any]) -> dict[str, Any]:
        period = result.period
        width = self._width(result, query)
        x = [f"{period.capitalize()} {k}" for k in range(width)]
        y = [f"{c.date[:10]} ({c.size})" for c in result.cohorts]
        cells = []
        for row, cohort in enumerate(result.cohorts):
            for col, value in enumerate(cohort.values):
                pct = round(100 * value / cohort.size, 1) if cohort.size else 0.0
                cells.append([col, row, pct])
        average = []
        for col in range(width):
            sizes = [c.size for c in result.cohorts if len(c.values) > col and c.size]
            back = [c.values[col] for c in result.cohorts if len(c.values) > col and c.size]
            average.append(round(100 * sum(back) / sum(sizes), 1) if sizes else None)
        total = sum(c.size for c in result.cohorts)
        people = self.people_url(query)
        return {
            "type": "heatmap",
            "height": max(260, 110 + 24 * len(y)),
            "x": x,
            "y": y,
            "cells": cells,
            "series": [{"name": "Average retention %", "data": average}],
            "total": total,
            "description": f"Retention of {len(result.cohorts)} {period}ly cohorts "
            f"({total} people); average return in {period} 1: "
            f"{average[1] if len(average) > 1 else 'n/a'}%.",
            "click": {"url": people + "&cohort=__Y__&at_period=__X__"},
        }

    def table(self, result: Any, query: dict[str, Any]) -> Table:
        width = self._width(result, query)
        header = ["Cohort", "People", *[f"{result.period.capitalize()} {k}" for k in range(width)]]
        rows = []
        for cohort in result.cohorts:
            cells = [
                f"{round(100 * v / cohort.size, 1) if cohort.size else 0}% ({v})"
                for v in cohort.values
            ]
            rows.append([cohort.date[:10], cohort.size, *cells, *[""] * (width - len(cells))])
        return Table(header=header, rows=rows)

    def people(self, query: dict[str, Any], params: QueryDict) -> tuple[str, list[str]]:
        cohort = _int(params, "cohort", 0)
        period = _int(params, "at_period", 0)
        cohort_no = cohort if isinstance(cohort, int) else 0
        period_no = period if isinstance(period, int) else 0
        ids = retention_people(RetentionQuery.from_dict(query), cohort=cohort_no, period=period_no)
        return f"Cohort {cohort_no + 1}, back in {query.get('period', 'week')} {period_no}", ids
