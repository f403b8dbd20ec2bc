"""Features per profile, computed in SQL as of a moment: counts of the frequent events in the
last 7/30/90 days, all events in those windows, days since the last event, sessions, and the
traits a definition selects (numbers, and categories one column per frequent value)."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count

from apps.events.models import Event, Session
from apps.profiles.models import Identity, Profile

WINDOWS = (7, 30, 90)
LOOKBACK_DAYS = max(WINDOWS)
# Platform events (segment entered, deliveries, ...) are not behaviour.
PLATFORM_CATEGORY = "internal"
MAX_CATEGORIES = 10
FETCH_CHUNK = 5000

_EVENT = Event._meta.db_table
_IDENTITY = Identity._meta.db_table
_PROFILE = Profile._meta.db_table
_SESSION = Session._meta.db_table


@dataclass
class FeatureSpec:
    """The columns of one model version: fixed when it is trained, reused when it scores."""

    events: list[str]
    numeric_traits: list[str] = field(default_factory=list)
    # trait key -> its frequent values (each gets a 0/1 column; anything else is "other").
    categorical_traits: dict[str, list[str]] = field(default_factory=dict)
    windows: list[int] = field(default_factory=lambda: list(WINDOWS))

    def columns(self) -> list[str]:
        names = [f"count_{event}_{days}d" for event in self.events for days in self.windows]
        names += [f"count_all_{days}d" for days in self.windows]
        names += ["days_since_last_event", "sessions_90d"]
        for key in self.numeric_traits:
            names += [f"trait_{key}", f"trait_{key}_missing"]
        for key, values in self.categorical_traits.items():
            names += [f"trait_{key}={value}" for value in values]
            names.append(f"trait_{key}=other")
        return names

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "numeric_traits": self.numeric_traits,
            "categorical_traits": self.categorical_traits,
            "windows": self.windows,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(
            events=list(data["events"]),
            numeric_traits=list(data.get("numeric_traits", [])),
            categorical_traits={k: list(v) for k, v in data.get("categorical_traits", {}).items()},
            windows=list(data.get("windows", WINDOWS)),
        )


def _at(moment: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(moment)


def frequent_events(*, as_of: datetime, limit: int) -> list[str]:
    """The `limit` most frequent event names of the lookback window before `as_of`."""
    names = (
        Event.objects.filter(
            timestamp__gte=as_of - timedelta(days=LOOKBACK_DAYS), timestamp__lt=as_of
        )
        .exclude(category=PLATFORM_CATEGORY)
        .values("event_name")
        .annotate(n=Count("id"))
        .order_by("-n", "event_name")
        .values_list("event_name", flat=True)[:limit]
    )
    return list(names)


def target_happened(*, event_name: str, start: datetime, end: datetime) -> bool:
    """Whether anyone performed the target event in (start, end]."""
    return Event.objects.filter(
        event_name=event_name, timestamp__gt=start, timestamp__lte=end
    ).exists()


def profiles_existing(*, as_of: datetime) -> int:
    """How many (unmerged) profiles had been seen before `as_of`: who can be learnt from."""
    return Profile.objects.filter(merged_into__isnull=True, first_seen__lt=as_of).count()


def categorical_values(keys: Sequence[str], *, as_of: datetime) -> dict[str, list[str]]:
    """The frequent values of categorical traits among the profiles seen before `as_of`."""
    counters: dict[str, Counter[str]] = {key: Counter() for key in keys}
    if not keys:
        return {}
    rows = Profile.objects.filter(merged_into__isnull=True, first_seen__lt=as_of).values_list(
        "traits", flat=True
    )
    for traits in rows.iterator(chunk_size=FETCH_CHUNK):
        for key in keys:
            value = _category(traits, key)
            if value is not None:
                counters[key][value] += 1
    return {key: [value for value, _ in counters[key].most_common(MAX_CATEGORIES)] for key in keys}


def _category(traits: Any, key: str) -> str | None:
    value = traits.get(key) if isinstance(traits, dict) else None
    if value is None or isinstance(value, dict | list):
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def _number(traits: Any, key: str) -> float | None:
    value = traits.get(key) if isinstance(traits, dict) else None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _feature_sql(spec: FeatureSpec, as_of: datetime, seen_before: bool) -> tuple[str, list[Any]]:
    """One statement, in steps that each run once (materialized on PostgreSQL, whatever the
    planner guesses of fresh tables): the lookback window's events counted per (distinct_id,
    event name, window), a pass over the events that evaluates only a few conditions per row;
    those counts (far fewer rows) pivoted per profile through the identity table, so merged
    ids count for their survivor; the sessions started in the window; every unmerged profile
    (seen before `as_of` for a training cutoff) with its traits."""
    mat = "MATERIALIZED " if connection.vendor == "postgresql" else ""
    start = _at(as_of - timedelta(days=LOOKBACK_DAYS))
    end = _at(as_of)
    windows = [w for w in spec.windows if w < LOOKBACK_DAYS]
    params: list[Any] = []
    per_name = [f"SUM(CASE WHEN e.timestamp >= %s THEN 1 ELSE 0 END) AS c{w}" for w in windows]
    params += [_at(as_of - timedelta(days=w)) for w in windows]
    per_name += [f"COUNT(*) AS c{LOOKBACK_DAYS}", "MAX(e.timestamp) AS last_at"]
    params += [start, end, PLATFORM_CATEGORY]
    pivot: list[str] = []
    for event in spec.events:
        for days in spec.windows:
            pivot.append(f"SUM(CASE WHEN n.event_name = %s THEN n.c{days} ELSE 0 END)")
            params.append(event)
    pivot += [f"SUM(n.c{days})" for days in spec.windows]
    if connection.vendor == "postgresql":
        pivot.append("EXTRACT(EPOCH FROM (%s - MAX(n.last_at))) / 86400.0")
    else:
        pivot.append("julianday(%s) - julianday(MAX(n.last_at))")
    params += [end, start, end]
    traits = "p.traits" if spec.numeric_traits or spec.categorical_traits else "NULL"
    where = "p.merged_into_id IS NULL"
    if seen_before:
        where += " AND p.first_seen < %s"
        params.append(end)
    # Table names are constants, every value a parameter.
    sql = (
        f"WITH n AS {mat}("  # noqa: S608
        f"SELECT e.distinct_id, e.event_name, {', '.join(per_name)} FROM {_EVENT} e "
        "WHERE e.timestamp >= %s AND e.timestamp < %s AND e.category <> %s "
        "GROUP BY e.distinct_id, e.event_name), "
        f"a AS {mat}(SELECT i.profile_id, {', '.join(pivot)} FROM n "
        f"JOIN {_IDENTITY} i ON i.distinct_id = n.distinct_id GROUP BY i.profile_id), "
        f"s AS {mat}(SELECT i.profile_id, COUNT(*) AS sessions FROM {_SESSION} se "
        f"JOIN {_IDENTITY} i ON i.distinct_id = se.distinct_id "
        "WHERE se.started_at >= %s AND se.started_at < %s GROUP BY i.profile_id) "
        f"SELECT p.id, {traits}, s.sessions, a.* FROM {_PROFILE} p "
        "LEFT JOIN a ON a.profile_id = p.id LEFT JOIN s ON s.profile_id = p.id "
        f"WHERE {where} ORDER BY p.id"
    )
    return sql, params


def feature_rows(
    spec: FeatureSpec, *, as_of: datetime, seen_before: bool
) -> Iterator[tuple[Any, list[float]]]:
    """(profile id, feature values in `spec.columns()` order) for every unmerged profile
    (seen before `as_of` when `seen_before`: a training cutoff), streamed in chunks. Counts
    enter as log(1 + n), since a few heavy users would otherwise dwarf everyone."""
    sql, params = _feature_sql(spec, as_of, seen_before)
    n_counts = len(spec.events) * len(spec.windows) + len(spec.windows)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # For this transaction only: no JIT compilation of the many aggregate expressions
            # (it costs more than it saves here), and memory for the grouping to stay in RAM.
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(sql, params)
        while True:
            chunk = cursor.fetchmany(FETCH_CHUNK)
            if not chunk:
                return
            for row in chunk:
                profile_id, raw_traits, sessions, agg = row[0], row[1], row[2], row[4:]
                if isinstance(raw_traits, str):  # JSON text (Django's psycopg loads it so too)
                    raw_traits = json.loads(raw_traits)
                yield profile_id, _values(spec, raw_traits, agg, n_counts, sessions)


def _values(
    spec: FeatureSpec, traits: Any, agg: Sequence[Any], n_counts: int, sessions: Any
) -> list[float]:
    if agg[0] is None:  # no event in the lookback window
        values = [0.0] * n_counts + [float(LOOKBACK_DAYS + 1)]
    else:
        values = [math.log1p(float(n or 0)) for n in agg[:n_counts]]
        values.append(min(float(agg[n_counts]), float(LOOKBACK_DAYS + 1)))
    values.append(math.log1p(float(sessions or 0)))
    for key in spec.numeric_traits:
        number = _number(traits, key)
        values += [0.0, 1.0] if number is None else [number, 0.0]
    for key, known in spec.categorical_traits.items():
        value = _category(traits, key)
        values += [1.0 if value == v else 0.0 for v in known]
        values.append(1.0 if value is not None and value not in known else 0.0)
    return values


def converters(*, event_name: str, start: datetime, end: datetime) -> set[Any]:
    """The label: the (unmerged) profiles seen before `start` that performed the target event
    in (start, end]."""
    sql = (
        f"SELECT DISTINCT i.profile_id FROM {_EVENT} e "  # noqa: S608 - constants
        f"JOIN {_IDENTITY} i ON i.distinct_id = e.distinct_id "
        f"JOIN {_PROFILE} p ON p.id = i.profile_id "
        "WHERE e.event_name = %s AND e.timestamp > %s AND e.timestamp <= %s "
        "AND p.merged_into_id IS NULL AND p.first_seen < %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [event_name, _at(start), _at(end), _at(start)])
        return {row[0] for row in cursor.fetchall()}
