"""Trends: one or more events over time (total, unique people, or a numeric property's
sum/avg/min/max/median), in calendar periods of the query's time zone, with a breakdown (event
property, trait, group or segment; top 10 + other) and an optional previous-period comparison."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from apps.insights.queries.base import (
    DateRange,
    QueryError,
    QueryRunner,
    Reader,
    read_date_range,
    read_event_name,
    read_filter,
    read_property_key,
)
from apps.insights.queries.selection import (
    IDENTITY_TABLE,
    PROFILE_TABLE,
    events_queryset,
    select_sql,
)
from apps.insights.queries.sql import (
    INTERVALS,
    fetch,
    json_number_sql,
    json_text_sql,
    period_of,
    period_sql,
    period_start,
    prepare,
)
from apps.profiles.models import Group, GroupMembership, GroupType
from apps.segments.filtering import Filter
from apps.segments.models import ProfileScore, ScoreDefinition, Segment, SegmentMembership

MATHS = ("total", "unique_people", "sum", "avg", "min", "max", "median")
PROPERTY_MATHS = ("sum", "avg", "min", "max", "median")
BREAKDOWN_TYPES = ("event", "trait", "group", "segment", "score")
# A score breakdown groups people by tenths of their score: "0.0-0.1" ... "0.9-1.0".
SCORE_BUCKETS = 10
MAX_SERIES = 10
MAX_POINTS = 2000
BREAKDOWN_LIMIT = 10
OTHER = "$other"
NONE = ""


@dataclass(frozen=True)
class Series:
    event: str
    math: str = "total"
    property_key: str | None = None
    filter: Filter | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or (self.event if self.event != "*" else "All events")

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "math": self.math,
            "property": self.property_key,
            "filter": self.filter.tree if self.filter else None,
            "name": self.name,
        }


@dataclass(frozen=True)
class Breakdown:
    """type "event" (key: event property), "trait" (key: trait), "group" (key: group type; the
    value is the person's group id of that type), "segment" (no key: each segment the person
    is in now; a person in several counts in each), "score" (key: a predictive score's name;
    the value is the tenth of 0..1 the person's current score falls in)."""

    type: str
    key: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "key": self.key}


def read_breakdown(reader: Reader, types: tuple[str, ...] = BREAKDOWN_TYPES) -> Breakdown | None:
    if not reader.has("breakdown"):
        return None
    sub = Reader(
        reader.raw("breakdown"), reader.path("breakdown"), allowed=frozenset({"type", "key"})
    )
    kind = sub.choice("type", types, "event")
    if kind == "segment":
        return Breakdown(type=kind, key=None)
    return Breakdown(type=kind, key=read_property_key(sub, "key"))


@dataclass(frozen=True)
class TrendsQuery:
    series: tuple[Series, ...]
    date_range: DateRange
    interval: str = "day"
    breakdown: Breakdown | None = None
    compare: bool = False
    filter: Filter | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: Any, *, now: datetime | None = None) -> TrendsQuery:
        reader = Reader(
            data,
            allowed=frozenset(
                {
                    "series",
                    "interval",
                    "date_from",
                    "date_to",
                    "timezone",
                    "breakdown",
                    "compare",
                    "filter",
                    "kind",
                }
            ),
        )
        series = []
        for path, item in reader.items("series", low=1, high=MAX_SERIES):
            sub = Reader(
                item, path, allowed=frozenset({"event", "math", "property", "filter", "name"})
            )
            math = sub.choice("math", MATHS, "total")
            prop = read_property_key(sub) if math in PROPERTY_MATHS else None
            if math not in PROPERTY_MATHS and sub.has("property"):
                raise QueryError(sub.path("property"), f"only for math {', '.join(PROPERTY_MATHS)}")
            series.append(
                Series(
                    event=read_event_name(sub),
                    math=math,
                    property_key=prop,
                    filter=read_filter(sub),
                    name=sub.string("name"),
                )
            )
        interval = reader.choice("interval", INTERVALS, "day")
        date_range = read_date_range(reader, now=now)
        first = period_of(date_range.start, interval, date_range.tz)
        last = period_of(date_range.end - timedelta(microseconds=1), interval, date_range.tz)
        if last - first + 1 > MAX_POINTS:
            raise QueryError(
                reader.path("interval"), f"too many {interval}s in the range (at most {MAX_POINTS})"
            )
        return cls(
            series=tuple(series),
            date_range=date_range,
            interval=interval,
            breakdown=read_breakdown(reader),
            compare=reader.boolean("compare"),
            filter=read_filter(reader),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "trends",
            "series": [s.as_dict() for s in self.series],
            "interval": self.interval,
            **self.date_range.as_dict(),
            "breakdown": self.breakdown.as_dict() if self.breakdown else None,
            "compare": self.compare,
            "filter": self.filter.tree if self.filter else None,
        }


@dataclass
class TrendsLine:
    label: str
    series_index: int
    event: str
    math: str
    breakdown_value: str | None
    compare: str | None  # "current", "previous" or None without comparison
    days: list[str]  # ISO local start of each period
    data: list[float]

    @property
    def total(self) -> float:
        return float(sum(self.data))

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "series_index": self.series_index,
            "event": self.event,
            "math": self.math,
            "breakdown_value": self.breakdown_value,
            "compare": self.compare,
            "days": self.days,
            "data": self.data,
            "total": self.total,
        }


@dataclass
class TrendsResult:
    interval: str
    lines: list[TrendsLine]
    date_range: DateRange

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "trends",
            "interval": self.interval,
            **self.date_range.as_dict(),
            "results": [line.as_dict() for line in self.lines],
        }


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, Decimal):
        return float(value)
    return float(value)


class TrendsRunner(QueryRunner[TrendsQuery, TrendsResult]):
    """One SQL statement per series (and per compared period): a filtered scan grouped by
    period (and breakdown value), people resolved once through the identity table."""

    kind = "trends"
    query_class = TrendsQuery.from_dict

    def calculate(self) -> TrendsResult:
        query = self.query
        lines: list[TrendsLine] = []
        ranges: list[tuple[str | None, DateRange]] = [(None, query.date_range)]
        if query.compare:
            span = query.date_range.end - query.date_range.start
            previous = DateRange(
                start=query.date_range.start - span,
                end=query.date_range.start,
                tz=query.date_range.tz,
            )
            ranges = [("current", query.date_range), ("previous", previous)]
        for index, series in enumerate(query.series):
            for compare, date_range in ranges:
                lines.extend(self._series(index, series, compare, date_range))
        return TrendsResult(interval=query.interval, lines=lines, date_range=query.date_range)

    def _series(
        self, index: int, series: Series, compare: str | None, date_range: DateRange
    ) -> list[TrendsLine]:
        query = self.query
        vendor = prepare(self.using)
        breakdown = query.breakdown
        needs_person = series.math == "unique_people" or (breakdown and breakdown.type != "event")
        queryset = events_queryset(
            using=self.using,
            names=[series.event],
            start=date_range.start,
            end=date_range.end,
            filters=[series.filter, query.filter],
            # Personless events count in totals and sums, never as people.
            people=bool(needs_person),
        )
        columns = ["distinct_id", "timestamp"]
        if series.property_key or (breakdown and breakdown.type == "event"):
            columns.append("properties")
        inner, inner_params = select_sql(queryset, *columns)
        period, period_params = period_sql(vendor, "e.timestamp", query.interval, date_range.tz)
        select = [f"{period} AS p"]
        params: list[Any] = [*period_params]
        joins: list[str] = []
        join_params: list[Any] = []
        if needs_person:
            joins.append(f"JOIN {IDENTITY_TABLE} pi ON pi.distinct_id = e.distinct_id")
            select.append("pi.profile_id AS person")
        if series.property_key:
            value, value_params = json_number_sql(vendor, "e.properties", series.property_key)
            select.append(f"{value} AS v")
            params += value_params
        if breakdown:
            bd, bd_params, bd_joins, bd_join_params = self._breakdown_sql(vendor, breakdown)
            select.append(f"COALESCE({bd}, '') AS bd")
            params += bd_params
            joins += bd_joins
            join_params += bd_join_params
        else:
            select.append("'' AS bd")
        agg = {
            "total": "count(*)",
            "unique_people": "count(DISTINCT person)",
            "sum": "sum(v)",
            "avg": "avg(v)",
            "min": "min(v)",
            "max": "max(v)",
            "median": (
                "insights_median(v)"
                if vendor == "sqlite"
                else "percentile_cont(0.5) WITHIN GROUP (ORDER BY v)"
            ),
        }[series.math]
        rows_sql = f"SELECT {', '.join(select)} FROM ({inner}) e {' '.join(joins)}"
        all_params = [*params, *inner_params, *join_params]
        if breakdown:
            sql = (
                f"WITH ev AS ({rows_sql}), "
                f"top AS (SELECT bd FROM ev GROUP BY bd ORDER BY count(*) DESC, bd "
                f"LIMIT {BREAKDOWN_LIMIT}) "
                f"SELECT CASE WHEN bd IN (SELECT bd FROM top) THEN bd ELSE %s END AS b, p, {agg} "
                f"FROM ev GROUP BY 1, 2"
            )
            all_params.append(OTHER)
        else:
            sql = f"SELECT bd, p, {agg} FROM ({rows_sql}) ev GROUP BY 1, 2"
        rows = fetch(self.using, sql, all_params)

        tz = date_range.tz
        first = period_of(date_range.start, query.interval, tz)
        last = period_of(date_range.end - timedelta(microseconds=1), query.interval, tz)
        days = [period_start(p, query.interval, tz).isoformat() for p in range(first, last + 1)]
        by_value: dict[str, list[float]] = {}
        for value, period, amount in rows:
            data = by_value.setdefault(value, [0.0] * len(days))
            if first <= period <= last:
                data[period - first] = _number(amount)
        if not breakdown and not by_value:
            by_value[NONE] = [0.0] * len(days)
        ordered = sorted(by_value, key=lambda v: (v == OTHER, -sum(by_value[v]), v))
        return [
            TrendsLine(
                label=series.label if not breakdown else f"{series.label} - {value or '(none)'}",
                series_index=index,
                event=series.event,
                math=series.math,
                breakdown_value=value if breakdown else None,
                compare=compare,
                days=days,
                data=by_value[value],
            )
            for value in ordered
        ]

    def _breakdown_sql(
        self, vendor: str, breakdown: Breakdown
    ) -> tuple[str, list[Any], list[str], list[Any]]:
        if breakdown.type == "event":
            assert breakdown.key is not None
            sql, params = json_text_sql(vendor, "e.properties", breakdown.key)
            return sql, params, [], []
        if breakdown.type == "trait":
            assert breakdown.key is not None
            sql, params = json_text_sql(vendor, "pp.traits", breakdown.key)
            return sql, params, [f"JOIN {PROFILE_TABLE} pp ON pp.id = pi.profile_id"], []
        if breakdown.type == "group":
            membership = GroupMembership._meta.db_table
            group = Group._meta.db_table
            group_type = GroupType._meta.db_table
            join = (
                f"LEFT JOIN (SELECT gm.profile_id, min(g.group_id) AS gid FROM {membership} gm "
                f"JOIN {group} g ON g.id = gm.group_id JOIN {group_type} gt "
                f"ON gt.id = g.group_type_id WHERE gt.key = %s GROUP BY gm.profile_id) grp "
                f"ON grp.profile_id = pi.profile_id"
            )
            return "grp.gid", [], [join], [breakdown.key]
        if breakdown.type == "score":
            return self._score_breakdown_sql(breakdown)
        membership = SegmentMembership._meta.db_table
        segment = Segment._meta.db_table
        join = (
            f"LEFT JOIN (SELECT sm.profile_id, s.key FROM {membership} sm JOIN {segment} s "
            f"ON s.id = sm.segment_id WHERE sm.exited_at IS NULL) seg "
            f"ON seg.profile_id = pi.profile_id"
        )
        return "seg.key", [], [join], []

    @staticmethod
    def _score_breakdown_sql(breakdown: Breakdown) -> tuple[str, list[Any], list[str], list[Any]]:
        join = (
            f"LEFT JOIN (SELECT ps.profile_id, ps.value FROM {ProfileScore._meta.db_table} ps "
            f"JOIN {ScoreDefinition._meta.db_table} sd ON sd.id = ps.definition_id "
            f"WHERE sd.name = %s) sc ON sc.profile_id = pi.profile_id"
        )
        whens = " ".join(
            f"WHEN sc.value < {(b + 1) / SCORE_BUCKETS} THEN '{_bucket(b)}'"
            for b in range(SCORE_BUCKETS - 1)
        )
        bucket = (
            f"CASE WHEN sc.value IS NULL THEN NULL {whens} ELSE '{_bucket(SCORE_BUCKETS - 1)}' END"
        )
        return bucket, [], [join], [breakdown.key]


def _bucket(index: int) -> str:
    return f"{index / SCORE_BUCKETS:.1f}-{(index + 1) / SCORE_BUCKETS:.1f}"


def run_trends(query: TrendsQuery, *, use_cache: bool = True) -> TrendsResult:
    return TrendsRunner(query).run(use_cache=use_cache)
