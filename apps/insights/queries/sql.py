"""SQL pieces the runners share, per database: calendar periods in a time zone, microsecond
epochs, JSON reads, the SQLite functions (registered on every connection) and the Python side
of the period numbering."""

from __future__ import annotations

import json
import math
import statistics
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.db.models import QuerySet

from apps.insights.queries.funnel_walk import funnel_walk

INTERVALS = ("hour", "day", "week", "month")
EPOCH_DAY = date(1970, 1, 1)
# 1970-01-01 was a Thursday: shifting by 3 days makes weeks start on Monday.
WEEK_SHIFT = 3
# Local wall-clock times are compared as naive datetimes against this.
NAIVE_EPOCH = datetime(1970, 1, 1, tzinfo=UTC).replace(tzinfo=None)


# --- Python side of the period numbering ----------------------------------------------------------


@lru_cache(maxsize=64)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


def period_of(moment: datetime, interval: str, tz: str) -> int:
    """The index of the calendar period (in `tz`) holding `moment`: hours, days, weeks
    (Monday first) or months since 1970-01-01 in local time."""
    local = moment.astimezone(_zone(tz)).replace(tzinfo=None)
    if interval == "hour":
        return math.floor((local - NAIVE_EPOCH).total_seconds() / 3600)
    days = (local.date() - EPOCH_DAY).days
    if interval == "day":
        return days
    if interval == "week":
        return (days + WEEK_SHIFT) // 7
    return local.year * 12 + local.month - 1


def period_start(index: int, interval: str, tz: str) -> datetime:
    """The local start of period `index` as an aware datetime."""
    zone = _zone(tz)
    if interval == "hour":
        return (NAIVE_EPOCH + timedelta(hours=index)).replace(tzinfo=zone)
    if interval == "month":
        year, month = divmod(index, 12)
        return datetime(year, month + 1, 1, tzinfo=zone)
    days = index if interval == "day" else index * 7 - WEEK_SHIFT
    day = EPOCH_DAY + timedelta(days=days)
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def _sqlite_datetime(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _sqlite_period(value: str | None, interval: str, tz: str) -> int | None:
    return None if value is None else period_of(_sqlite_datetime(value), interval, tz)


def epoch_us(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _sqlite_epoch_us(value: str | None) -> int | None:
    return None if value is None else epoch_us(_sqlite_datetime(value))


class _Median:
    def __init__(self) -> None:
        self.values: list[float] = []

    def step(self, value: Any) -> None:
        if value is not None:
            self.values.append(value)

    def finalize(self) -> float | None:
        return float(statistics.median(self.values)) if self.values else None


class _Funnel:
    """insights_funnel(mask, epoch_us, event_id, config_json): the person's walk as JSON
    [reached, t1, ..., tn]; rows are sorted here, so the feeding order doesn't matter."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, int]] = []
        self.config = ""

    def step(self, mask: int, ts: int, event_id: int, config: str) -> None:
        self.rows.append((ts, event_id, mask))
        self.config = config

    def finalize(self) -> str:
        config = json.loads(self.config)
        self.rows.sort()
        reached, times = funnel_walk(
            [(ts, mask) for ts, _, mask in self.rows],
            n=config["n"],
            window_us=config["window_us"],
            strict=config["strict"],
            start_before=config["start_before"],
            exclusions=[tuple(pair) for pair in config["exclusions"]],
        )
        return json.dumps([reached, *times])


def _register_sqlite(connection: BaseDatabaseWrapper) -> None:
    raw = connection.connection
    raw.create_function("insights_period", 3, _sqlite_period, deterministic=True)
    raw.create_function("insights_epoch_us", 1, _sqlite_epoch_us, deterministic=True)
    raw.create_aggregate("insights_median", 1, _Median)
    raw.create_aggregate("insights_funnel", 4, _Funnel)


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        _register_sqlite(connection)


connection_created.connect(_on_connection_created, dispatch_uid="insights_queries_sqlite")


def prepare(using: str) -> str:
    """The vendor of the database; on SQLite, the open connection gets our functions."""
    connection = connections[using]
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        _register_sqlite(connection)
    return connection.vendor


# --- SQL fragments (text, params) ---------------------------------------------------------


def period_sql(vendor: str, column: str, interval: str, tz: str) -> tuple[str, list[Any]]:
    if vendor == "sqlite":
        return f"insights_period({column}, %s, %s)", [interval, tz]
    local = f"({column} AT TIME ZONE %s)"
    days = f"({local}::date - DATE '1970-01-01')"
    if interval == "hour":
        return f"floor(extract(epoch FROM {local}) / 3600)::bigint", [tz]
    if interval == "day":
        return days, [tz]
    if interval == "week":
        return f"floor(({days} + {WEEK_SHIFT}) / 7.0)::int", [tz]
    return f"(extract(year FROM {local})::int * 12 + extract(month FROM {local})::int - 1)", [
        tz,
        tz,
    ]


def epoch_us_sql(vendor: str, column: str) -> str:
    if vendor == "sqlite":
        return f"insights_epoch_us({column})"
    return f"(extract(epoch FROM {column}) * 1000000)::bigint"


def json_text_sql(vendor: str, column: str, key: str) -> tuple[str, list[Any]]:
    """A JSON scalar as text (true/false for booleans); NULL when missing, null or not a scalar."""
    if vendor == "sqlite":
        path = f'$."{key}"'
        return (
            f"CASE json_type({column}, %s) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
            f"WHEN 'text' THEN json_extract({column}, %s) "
            f"WHEN 'integer' THEN CAST(json_extract({column}, %s) AS TEXT) "
            f"WHEN 'real' THEN CAST(json_extract({column}, %s) AS TEXT) END",
            [path, path, path, path],
        )
    return (
        f"CASE WHEN jsonb_typeof({column} -> %s) IN ('string', 'number', 'boolean') "
        f"THEN {column} ->> %s END",
        [key, key],
    )


def json_number_sql(vendor: str, column: str, key: str) -> tuple[str, list[Any]]:
    """A JSON number as a number; NULL for anything else (no coercion of strings)."""
    if vendor == "sqlite":
        path = f'$."{key}"'
        return (
            f"CASE WHEN json_type({column}, %s) IN ('integer', 'real') "
            f"THEN json_extract({column}, %s) END",
            [path, path],
        )
    return (
        f"CASE WHEN jsonb_typeof({column} -> %s) = 'number' THEN ({column} ->> %s)::numeric END",
        [key, key],
    )


def queryset_sql(queryset: QuerySet[Any]) -> tuple[str, list[Any]]:
    """The SQL of a queryset, to use as a subquery in FROM."""
    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    return sql, list(params)


def fetch(using: str, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
