"""Retention: people who did the start event in a period (their cohort) and came back with the
return event in later periods; first-time (the person's first start event ever) or recurring
(every period with a start event is a cohort) cohorts; calendar day/week/month periods in the
query's time zone."""

from __future__ import annotations

from dataclasses import dataclass
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
from apps.insights.queries.funnels import MAX_PEOPLE, _uuid
from apps.insights.queries.selection import IDENTITY_TABLE, events_queryset, select_sql
from apps.insights.queries.sql import fetch, period_of, period_sql, period_start, prepare
from apps.segments.filtering import Filter

KINDS = ("first_time", "recurring")
PERIODS = ("day", "week", "month")
MAX_PERIODS = 60
MAX_COHORTS = 400


@dataclass(frozen=True)
class RetentionEntity:
    event: str
    filter: Filter | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.event, "filter": self.filter.tree if self.filter else None}


def _entity(reader: Reader, name: str) -> RetentionEntity:
    if not reader.has(name):
        raise QueryError(reader.path(name), "is required")
    sub = Reader(reader.raw(name), reader.path(name), allowed=frozenset({"event", "filter"}))
    return RetentionEntity(event=read_event_name(sub), filter=read_filter(sub))


@dataclass(frozen=True)
class RetentionQuery:
    start: RetentionEntity
    returning: RetentionEntity
    date_range: DateRange
    kind: str = "first_time"
    period: str = "week"
    periods: int = 8
    filter: Filter | None = None

    @classmethod
    def from_dict(cls, data: Any, *, now: datetime | None = None) -> RetentionQuery:
        reader = Reader(
            data,
            allowed=frozenset(
                {
                    "start",
                    "return",
                    "kind",
                    "retention_type",
                    "period",
                    "periods",
                    "date_from",
                    "date_to",
                    "timezone",
                    "filter",
                }
            ),
        )
        period = reader.choice("period", PERIODS, "week")
        date_range = read_date_range(reader, now=now, default_from="-8w")
        query = cls(
            start=_entity(reader, "start"),
            returning=_entity(reader, "return"),
            date_range=date_range,
            kind=reader.choice("retention_type", KINDS, "first_time"),
            period=period,
            periods=reader.integer("periods", default=8, low=1, high=MAX_PERIODS),
            filter=read_filter(reader),
        )
        if len(query.cohort_periods) > MAX_COHORTS:
            raise QueryError(reader.path("period"), f"at most {MAX_COHORTS} cohorts in the range")
        return query

    @property
    def cohort_periods(self) -> range:
        tz = self.date_range.tz
        first = period_of(self.date_range.start, self.period, tz)
        last = period_of(self.date_range.end - timedelta(microseconds=1), self.period, tz)
        return range(first, last + 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "retention",
            "start": self.start.as_dict(),
            "return": self.returning.as_dict(),
            "retention_type": self.kind,
            "period": self.period,
            "periods": self.periods,
            **self.date_range.as_dict(),
            "filter": self.filter.tree if self.filter else None,
        }


@dataclass
class RetentionCohort:
    date: str  # ISO local start of the cohort's period
    size: int
    values: list[int]  # people back in period 0 (= size), 1, ... (only periods that began)

    def as_dict(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "size": self.size,
            "values": self.values,
            "percentages": [round(v / self.size, 4) if self.size else 0.0 for v in self.values],
        }


@dataclass
class RetentionResult:
    period: str
    kind: str
    cohorts: list[RetentionCohort]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "retention",
            "period": self.period,
            "retention_type": self.kind,
            "cohorts": [c.as_dict() for c in self.cohorts],
        }


class RetentionRunner(QueryRunner[RetentionQuery, RetentionResult]):
    kind = "retention"
    query_class = RetentionQuery.from_dict

    def _cte(self) -> tuple[str, list[Any]]:
        """CTEs `pe` (person, period, did start, did return) and `cohort` (person, c)."""
        query = self.query
        vendor = prepare(self.using)
        rng = query.date_range
        cohorts = query.cohort_periods
        # Returns can only count in periods after the cohort's, up to `periods` - 1 later.
        return_end = period_start(cohorts[-1] + query.periods, query.period, rng.tz)
        # Cohorts are whole periods. First-time cohorts need the person's first start event
        # ever; recurring ones the start events of the cohort periods.
        cohort_start = period_start(cohorts[0], query.period, rng.tz)
        start_end = period_start(cohorts[-1] + 1, query.period, rng.tz)
        start_from = None if query.kind == "first_time" else cohort_start
        same = query.start == query.returning
        parts: list[tuple[str, list[Any]]] = []
        if same:
            qs = events_queryset(
                using=self.using,
                names=[query.start.event],
                start=start_from,
                end=return_end,
                filters=[query.start.filter, query.filter],
                people=True,
            )
            sql, params = select_sql(qs, "distinct_id", "timestamp")
            parts.append((f"SELECT distinct_id, timestamp, 1 AS s, 1 AS r FROM ({sql}) a", params))
        else:
            qs = events_queryset(
                using=self.using,
                names=[query.start.event],
                start=start_from,
                end=start_end,
                filters=[query.start.filter, query.filter],
                people=True,
            )
            sql, params = select_sql(qs, "distinct_id", "timestamp")
            parts.append((f"SELECT distinct_id, timestamp, 1 AS s, 0 AS r FROM ({sql}) a", params))
            qs = events_queryset(
                using=self.using,
                names=[query.returning.event],
                start=cohort_start,
                end=return_end,
                filters=[query.returning.filter, query.filter],
                people=True,
            )
            sql, params = select_sql(qs, "distinct_id", "timestamp")
            parts.append((f"SELECT distinct_id, timestamp, 0 AS s, 1 AS r FROM ({sql}) b", params))
        union = " UNION ALL ".join(p[0] for p in parts)
        union_params = [x for p in parts for x in p[1]]
        period, period_params = period_sql(vendor, "e.timestamp", query.period, rng.tz)
        pe = (
            f"SELECT pi.profile_id AS person, {period} AS p, max(e.s) AS s, max(e.r) AS r "
            f"FROM ({union}) e JOIN {IDENTITY_TABLE} pi ON pi.distinct_id = e.distinct_id "
            f"GROUP BY 1, 2"
        )
        return f"WITH pe AS ({pe})", [*period_params, *union_params]

    def calculate(self) -> RetentionResult:
        """No join: first-time cohorts come from a window minimum over each person's periods;
        recurring ones from one window frame per offset (did the person start k periods
        before this return?), summed per period."""
        query = self.query
        cte, params = self._cte()
        counts: dict[tuple[int, int], int] = {}
        if query.kind == "first_time":
            sql = (
                f"{cte}, x AS (SELECT p, r, min(CASE WHEN s = 1 THEN p END) OVER "
                f"(PARTITION BY person) AS c FROM pe) "
                f"SELECT c, p - c, count(*) FROM x WHERE (p = c) OR (r = 1 AND p > c "
                f"AND p < c + {query.periods}) GROUP BY 1, 2"
            )
            for c, k, v in fetch(self.using, sql, params):
                counts[(int(c), int(k))] = int(v)
        else:
            frames = ", ".join(
                f"max(s) OVER (PARTITION BY person ORDER BY p RANGE BETWEEN {k} PRECEDING "
                f"AND {k} PRECEDING) AS b{k}"
                for k in range(1, query.periods)
            )
            sums = "".join(f", sum(CASE WHEN r = 1 THEN b{k} END)" for k in range(1, query.periods))
            sql = f"{cte}, x AS (SELECT p, s, r{', ' + frames if frames else ''} FROM pe) "
            sql += f"SELECT p, sum(s){sums} FROM x GROUP BY p"
            for p, size, *back in fetch(self.using, sql, params):
                counts[(int(p), 0)] = int(size or 0)
                for k, value in enumerate(back, start=1):
                    counts[(int(p) - k, k)] = int(value or 0)
        rng = query.date_range
        now_period = period_of(datetime.now(tz=rng.zone), query.period, rng.tz)
        cohorts = []
        for c in query.cohort_periods:
            width = max(1, min(query.periods, now_period - c + 1))
            cohorts.append(
                RetentionCohort(
                    date=period_start(c, query.period, rng.tz).isoformat(),
                    size=counts.get((c, 0), 0),
                    values=[counts.get((c, k), 0) for k in range(width)],
                )
            )
        return RetentionResult(period=query.period, kind=query.kind, cohorts=cohorts)

    def people(self, *, cohort: int, period: int, limit: int = 100, offset: int = 0) -> list[str]:
        """Profile ids in cohort `cohort` (0-based, in date order) who came back in period
        `period` (0: everyone in the cohort), ordered by id."""
        query = self.query
        periods = query.cohort_periods
        if not 0 <= cohort < len(periods):
            raise QueryError("cohort", f"must be between 0 and {len(periods) - 1}")
        if not 0 <= period < query.periods:
            raise QueryError("period", f"must be between 0 and {query.periods - 1}")
        if not 1 <= limit <= MAX_PEOPLE or offset < 0:
            raise QueryError("limit", f"must be between 1 and {MAX_PEOPLE}")
        cte, params = self._cte()
        c = periods[cohort]
        back = c + period
        if query.kind == "first_time":
            sql = (
                f"{cte}, x AS (SELECT person, p, r, min(CASE WHEN s = 1 THEN p END) OVER "
                f"(PARTITION BY person) AS c FROM pe) SELECT person FROM x WHERE c = {c} "
                f"AND p = {back}" + (" AND r = 1" if period else "")
            )
        elif period == 0:
            sql = f"{cte} SELECT person FROM pe WHERE s = 1 AND p = {c}"
        else:
            sql = (
                f"{cte} SELECT person FROM pe WHERE p IN ({c}, {back}) GROUP BY person "
                f"HAVING max(CASE WHEN p = {c} THEN s END) = 1 "
                f"AND max(CASE WHEN p = {back} THEN r END) = 1"
            )
        sql += f" ORDER BY 1 LIMIT {int(limit)} OFFSET {int(offset)}"
        return [str(_uuid(row[0])) for row in fetch(self.using, sql, params)]


def run_retention(query: RetentionQuery, *, use_cache: bool = True) -> RetentionResult:
    return RetentionRunner(query).run(use_cache=use_cache)


def retention_people(
    query: RetentionQuery, *, cohort: int, period: int, limit: int = 100, offset: int = 0
) -> list[str]:
    return RetentionRunner(query).people(cohort=cohort, period=period, limit=limit, offset=offset)
