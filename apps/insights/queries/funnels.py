"""Funnels: 2 to 10 ordered steps within a conversion window, ordered or strict, with
exclusions and a first-touch breakdown; counts, conversion, drop-off and time to convert, and
the people who converted or dropped at a step.

One pass: the rows of every step (and exclusion) are read in one filtered scan, each tagged
with a bit mask, people are resolved once through the identity table, and one ordered
aggregate per person walks the funnel (plpgsql `insights_funnel` on PostgreSQL, from
migration 0002; the Python walk in funnel_walk.py as a SQLite aggregate).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apps.insights.queries.base import (
    DateRange,
    QueryError,
    QueryRunner,
    Reader,
    read_date_range,
    read_event_name,
    read_filter,
)
from apps.insights.queries.selection import (
    ANY_EVENT,
    IDENTITY_TABLE,
    PROFILE_TABLE,
    events_queryset,
    select_sql,
    step_flag,
)
from apps.insights.queries.sql import epoch_us, epoch_us_sql, fetch, json_text_sql, prepare
from apps.insights.queries.trends import OTHER, Breakdown, read_breakdown
from apps.segments.filtering import Filter

MODES = ("ordered", "strict")
WINDOW_UNITS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
MAX_WINDOW = timedelta(days=90)
DEFAULT_WINDOW = timedelta(days=14)
MAX_STEPS = 10
MAX_EXCLUSIONS = 5
BREAKDOWN_LIMIT = 10
MAX_PEOPLE = 10_000


@dataclass(frozen=True)
class FunnelStep:
    event: str
    filter: Filter | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or (self.event if self.event != ANY_EVENT else "Any event")

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "filter": self.filter.tree if self.filter else None,
            "name": self.name,
        }


@dataclass(frozen=True)
class Exclusion:
    """An event that, between step `from_step` and step `to_step` (0-based), disqualifies
    the attempt."""

    event: str
    from_step: int
    to_step: int
    filter: Filter | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "from_step": self.from_step,
            "to_step": self.to_step,
            "filter": self.filter.tree if self.filter else None,
        }


@dataclass(frozen=True)
class FunnelQuery:
    steps: tuple[FunnelStep, ...]
    date_range: DateRange
    window: timedelta = DEFAULT_WINDOW
    mode: str = "ordered"
    exclusions: tuple[Exclusion, ...] = ()
    breakdown: Breakdown | None = None
    filter: Filter | None = None

    @classmethod
    def from_dict(cls, data: Any, *, now: datetime | None = None) -> FunnelQuery:
        reader = Reader(
            data,
            allowed=frozenset(
                {
                    "steps",
                    "window",
                    "mode",
                    "exclusions",
                    "breakdown",
                    "date_from",
                    "date_to",
                    "timezone",
                    "filter",
                    "kind",
                }
            ),
        )
        steps = []
        for path, item in reader.items("steps", low=2, high=MAX_STEPS):
            sub = Reader(item, path, allowed=frozenset({"event", "filter", "name"}))
            steps.append(
                FunnelStep(
                    event=read_event_name(sub), filter=read_filter(sub), name=sub.string("name")
                )
            )
        window = DEFAULT_WINDOW
        if reader.has("window"):
            sub = Reader(
                reader.raw("window"), reader.path("window"), allowed=frozenset({"value", "unit"})
            )
            unit = sub.choice("unit", tuple(WINDOW_UNITS), "day")
            value = sub.integer("value", default=14, low=1, high=90 * 24 * 60)
            window = timedelta(seconds=value * WINDOW_UNITS[unit])
            if window > MAX_WINDOW:
                raise QueryError(sub.path("value"), "the window is at most 90 days")
        exclusions = []
        for path, item in reader.items("exclusions", low=0, high=MAX_EXCLUSIONS):
            sub = Reader(item, path, allowed=frozenset({"event", "filter", "from_step", "to_step"}))
            low = sub.integer("from_step", default=0, low=0, high=len(steps) - 2)
            high = sub.integer("to_step", default=len(steps) - 1, low=1, high=len(steps) - 1)
            if high <= low:
                raise QueryError(sub.path("to_step"), "must be after from_step")
            exclusions.append(
                Exclusion(
                    event=read_event_name(sub), from_step=low, to_step=high, filter=read_filter(sub)
                )
            )
        return cls(
            steps=tuple(steps),
            date_range=read_date_range(reader, now=now, default_from="-30d"),
            window=window,
            mode=reader.choice("mode", MODES, "ordered"),
            exclusions=tuple(exclusions),
            breakdown=read_breakdown(reader, ("event", "trait")),
            filter=read_filter(reader),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "funnels",
            "steps": [s.as_dict() for s in self.steps],
            "window_seconds": int(self.window.total_seconds()),
            "mode": self.mode,
            "exclusions": [e.as_dict() for e in self.exclusions],
            "breakdown": self.breakdown.as_dict() if self.breakdown else None,
            **self.date_range.as_dict(),
            "filter": self.filter.tree if self.filter else None,
        }


@dataclass
class FunnelStepResult:
    index: int
    label: str
    event: str
    count: int
    conversion_from_first: float  # 0..1
    conversion_from_previous: float
    dropped: int  # reached the previous step but not this one (0 for the first step)
    average_seconds: float | None  # time from the previous step, of those who converted
    median_seconds: float | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class FunnelBreakdownResult:
    breakdown_value: str | None  # None: everyone
    steps: list[FunnelStepResult]

    def as_dict(self) -> dict[str, Any]:
        return {"breakdown_value": self.breakdown_value, "steps": [s.as_dict() for s in self.steps]}


@dataclass
class FunnelResult:
    mode: str
    window_seconds: int
    overall: FunnelBreakdownResult
    breakdowns: list[FunnelBreakdownResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "funnels",
            "mode": self.mode,
            "window_seconds": self.window_seconds,
            "steps": [s.as_dict() for s in self.overall.steps],
            "breakdowns": [b.as_dict() for b in self.breakdowns],
        }


class FunnelRunner(QueryRunner[FunnelQuery, FunnelResult]):
    kind = "funnels"
    query_class = FunnelQuery.from_dict

    def _per_person_sql(self) -> tuple[str, list[Any]]:
        """CTE `per`: one row per person who did step 1 in range: person, bd, reached, t1..tn
        (epoch microseconds)."""
        query = self.query
        vendor = prepare(self.using)
        n = len(query.steps)
        rng = query.date_range
        strict = query.mode == "strict"
        names = (
            None if strict else [s.event for s in query.steps] + [e.event for e in query.exclusions]
        )
        queryset = events_queryset(
            using=self.using,
            names=names,
            start=rng.start,
            end=rng.end + query.window,
            filters=[query.filter],
            people=True,
        )
        flags = {
            f"f{k}": step_flag(self.using, s.event, s.filter) for k, s in enumerate(query.steps)
        }
        for j, exclusion in enumerate(query.exclusions):
            flags[f"f{n + j}"] = step_flag(self.using, exclusion.event, exclusion.filter)
        columns = ["id", "distinct_id", "timestamp", *flags]
        bd_event = query.breakdown is not None and query.breakdown.type == "event"
        if bd_event:
            columns.append("properties")
        inner, inner_params = select_sql(queryset.annotate(**flags), *columns)
        mask = " + ".join(f"e.f{k} * {1 << k}" for k in range(len(flags)))
        epoch = epoch_us_sql(vendor, "e.timestamp")
        params: list[Any] = []
        bd_select = "''"
        joins = f"JOIN {IDENTITY_TABLE} pi ON pi.distinct_id = e.distinct_id"
        if query.breakdown is not None and query.breakdown.key is not None:
            column = "e.properties" if bd_event else "pp.traits"
            bd_select, params = json_text_sql(vendor, column, query.breakdown.key)
            if not bd_event:
                joins += f" JOIN {PROFILE_TABLE} pp ON pp.id = pi.profile_id"
        rows_sql = (
            f"SELECT pi.profile_id AS person, e.id AS eid, {epoch} AS ts, ({mask}) AS m, "
            f"COALESCE({bd_select}, '') AS bd FROM ({inner}) e {joins}"
        )
        rows_params = [*params, *inner_params]
        start_before = epoch_us(rng.end)
        window_us = int(query.window.total_seconds()) * 1_000_000
        if vendor == "sqlite":
            config = json.dumps(
                {
                    "n": n,
                    "window_us": window_us,
                    "strict": strict,
                    "start_before": start_before,
                    "exclusions": [[e.from_step, e.to_step] for e in query.exclusions],
                }
            )
            per = (
                f"SELECT person, min(fbd) AS bd, insights_funnel(m, ts, eid, %s) AS r "
                f"FROM (SELECT *, first_value(bd) OVER "
                f"(PARTITION BY person ORDER BY (m & 1) DESC, ts, eid) AS fbd "
                f"FROM ({rows_sql}) x) rows GROUP BY person"
            )
            per_sql = (
                "SELECT person, COALESCE(bd, '') AS bd, "
                "CAST(json_extract(r, '$[0]') AS INTEGER) AS reached, "
                + ", ".join(f"json_extract(r, '$[{k + 1}]') AS t{k}" for k in range(n))
                + f" FROM ({per}) agg WHERE json_extract(r, '$[0]') > 0"
            )
            return per_sql, [config, *rows_params]
        first_touch = (
            "COALESCE((array_agg(bd) FILTER (WHERE m & 1 = 1))[1], '')"
            if query.breakdown is not None
            else "''"
        )
        walk = "insights_funnel(array_agg(m), array_agg(ts), %s, %s, %s, %s, %s::int[], %s::int[])"
        shortcut_params: list[Any] = []
        if not query.exclusions:
            # Without exclusions most people need no walk: no step-1 event in range (nowhere),
            # or no event of step 2 (at step 1, from their latest step-1 event).
            walk = (
                "CASE WHEN NOT bool_or(m & 1 = 1 AND ts < %s) THEN ARRAY[0]::bigint[] "
                "WHEN NOT bool_or(m & 2 = 2) THEN ARRAY[1, max(ts) FILTER "
                f"(WHERE m & 1 = 1 AND ts < %s)]::bigint[] ELSE {walk} END"
            )
            shortcut_params = [start_before, start_before]
        per = (
            f"SELECT person, {first_touch} AS bd, {walk} AS r "
            # One sort of the rows (person, time, id) feeds the group aggregate in order:
            # cheaper than a sort per person and array (array_agg(... ORDER BY ...)).
            f"FROM ({rows_sql} ORDER BY person, ts, eid) x GROUP BY person "
            # OFFSET 0 keeps the subquery whole: flattened, each r[k] below would call the
            # function again.
            f"OFFSET 0"
        )
        per_params = [
            *shortcut_params,
            n,
            window_us,
            strict,
            start_before,
            [e.from_step for e in query.exclusions],
            [e.to_step for e in query.exclusions],
            *rows_params,
        ]
        per_sql = (
            "SELECT person, bd, r[1] AS reached, "
            + ", ".join(f"r[{k + 2}] AS t{k}" for k in range(n))
            + f" FROM ({per}) agg WHERE r[1] > 0"
        )
        return per_sql, per_params

    def calculate(self) -> FunnelResult:
        query = self.query
        vendor = prepare(self.using)
        n = len(query.steps)
        per_sql, params = self._per_person_sql()
        median = (
            (lambda e: f"insights_median({e})")
            if vendor == "sqlite"
            else (lambda e: f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {e})")
        )
        aggs = []
        for k in range(n):
            aggs.append(f"sum(CASE WHEN reached >= {k + 1} THEN 1 ELSE 0 END)")
            if k:
                gap = f"(CASE WHEN reached >= {k + 1} THEN t{k} - t{k - 1} END)"
                aggs.append(f"avg({gap})")
                aggs.append(median(gap))
        agg_sql = ", ".join(aggs)
        if query.breakdown is not None:
            sql = (
                f"WITH per AS ({per_sql}), "
                f"top AS (SELECT bd FROM per GROUP BY bd ORDER BY count(*) DESC, bd "
                f"LIMIT {BREAKDOWN_LIMIT}) "
                f"SELECT 0, CASE WHEN bd IN (SELECT bd FROM top) THEN bd ELSE %s END, {agg_sql} "
                f"FROM per GROUP BY 2 UNION ALL SELECT 1, NULL, {agg_sql} FROM per"
            )
            params = [*params, OTHER]
        else:
            sql = f"SELECT 1, NULL, {agg_sql} FROM ({per_sql}) per"
        rows = fetch(self.using, sql, params)
        overall = None
        breakdowns = []
        for row in rows:
            result = FunnelBreakdownResult(breakdown_value=row[1], steps=self._steps(row[2:]))
            if row[0] == 1:
                overall = result
            else:
                breakdowns.append(result)
        if overall is None:
            overall = FunnelBreakdownResult(None, self._steps([None] * (3 * n - 2)))
        breakdowns.sort(
            key=lambda b: (b.breakdown_value == OTHER, -b.steps[0].count, b.breakdown_value or "")
        )
        return FunnelResult(
            mode=query.mode,
            window_seconds=int(query.window.total_seconds()),
            overall=overall,
            breakdowns=breakdowns,
        )

    def _steps(self, values: Any) -> list[FunnelStepResult]:
        values = list(values)
        out: list[FunnelStepResult] = []
        first = int(values[0] or 0)
        previous = first
        position = 1
        for k, step in enumerate(self.query.steps):
            if k == 0:
                count, average, median = first, None, None
            else:
                count = int(values[position] or 0)
                average = (
                    None if values[position + 1] is None else float(values[position + 1]) / 1e6
                )
                median = None if values[position + 2] is None else float(values[position + 2]) / 1e6
                position += 3
            out.append(
                FunnelStepResult(
                    index=k,
                    label=step.label,
                    event=step.event,
                    count=count,
                    conversion_from_first=count / first if first else 0.0,
                    conversion_from_previous=count / previous if previous else 0.0,
                    dropped=previous - count if k else 0,
                    average_seconds=average,
                    median_seconds=median,
                )
            )
            previous = count
        return out

    def people(
        self,
        *,
        step: int,
        status: str = "converted",
        breakdown_value: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[str]:
        """Profile ids of the people who reached step `step` (0-based; "converted") or reached
        the step before it and not this one ("dropped"), ordered by id."""
        n = len(self.query.steps)
        if not 0 <= step < n:
            raise QueryError("step", f"must be between 0 and {n - 1}")
        if status not in ("converted", "dropped"):
            raise QueryError("status", "must be converted or dropped")
        if status == "dropped" and step == 0:
            raise QueryError("step", "nobody drops before the first step")
        if not 1 <= limit <= MAX_PEOPLE or offset < 0:
            raise QueryError("limit", f"must be between 1 and {MAX_PEOPLE}")
        per_sql, params = self._per_person_sql()
        condition = f"reached >= {step + 1}" if status == "converted" else f"reached = {step}"
        sql = f"SELECT person FROM ({per_sql}) per WHERE {condition}"
        if breakdown_value is not None and breakdown_value != OTHER:
            sql += " AND bd = %s"
            params = [*params, breakdown_value]
        sql += f" ORDER BY person LIMIT {int(limit)} OFFSET {int(offset)}"
        return [str(_uuid(row[0])) for row in fetch(self.using, sql, params)]


def _uuid(value: Any) -> Any:
    import uuid

    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def run_funnel(query: FunnelQuery, *, use_cache: bool = True) -> FunnelResult:
    return FunnelRunner(query).run(use_cache=use_cache)


def funnel_people(
    query: FunnelQuery,
    *,
    step: int,
    status: str = "converted",
    breakdown_value: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[str]:
    return FunnelRunner(query).people(
        step=step, status=status, breakdown_value=breakdown_value, limit=limit, offset=offset
    )
