"""Retention against a plain-Python reference on generated data (hypothesis): first-time and
recurring cohorts, day/week/month periods in time zones, merged profiles; the people of a
cell; validation errors; query counts."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.insights.queries import QueryError, RetentionQuery, retention_people, run_retention
from tests.insights.test_queries_world import BASE, Row, World, rolled_back, rows, store

ZONES = ["UTC", "America/New_York", "Asia/Kolkata"]


def period_index(ts: datetime, period: str, tz: str) -> int:
    day = ts.astimezone(ZoneInfo(tz)).date()
    if period == "day":
        return day.toordinal()
    if period == "week":
        return (day - timedelta(days=day.weekday())).toordinal() // 7
    return day.year * 12 + day.month


def reference(world: World, query: dict[str, Any], first: date, last: date) -> dict[str, Any]:
    tz, period, periods = query["timezone"], query["period"], query["periods"]
    noon = datetime(first.year, first.month, first.day, 12, tzinfo=ZoneInfo(tz))
    c0 = period_index(noon, period, tz)
    c1 = period_index(
        datetime(last.year, last.month, last.day, 12, tzinfo=ZoneInfo(tz)), period, tz
    )
    starts: dict[str, set[int]] = {}
    returns: dict[str, set[int]] = {}
    for row in world.rows:
        person = world.person_of(row)
        if person is None:
            continue
        p = period_index(row.ts, period, tz)
        if row.name == query["start"]["event"]:
            starts.setdefault(person, set()).add(p)
        if row.name == query["return"]["event"]:
            returns.setdefault(person, set()).add(p)
    cohorts: dict[int, set[str]] = {c: set() for c in range(c0, c1 + 1)}
    for person, ps in starts.items():
        chosen = [min(ps)] if query["retention_type"] == "first_time" else sorted(ps)
        for c in chosen:
            if c0 <= c <= c1:
                cohorts[c].add(person)
    table = []
    cells = {}
    for c in range(c0, c1 + 1):
        line = [len(cohorts[c])]
        cells[(c - c0, 0)] = sorted(cohorts[c])
        for k in range(1, periods):
            back = sorted(p for p in cohorts[c] if c + k in returns.get(p, set()))
            line.append(len(back))
            cells[(c - c0, k)] = back
        table.append(line)
    return {"table": table, "cells": cells}


query_strategy = st.fixed_dictionaries(
    {
        "start": st.sampled_from(["signup", "view"]),
        "return": st.sampled_from(["view", "buy"]),
        "retention_type": st.sampled_from(["first_time", "recurring"]),
        "period": st.sampled_from(["day", "week", "month"]),
        "periods": st.integers(1, 6),
        "timezone": st.sampled_from(ZONES),
        "days": st.tuples(st.integers(0, 20), st.integers(0, 20)),
    }
)


@pytest.mark.django_db
@given(data=rows(max_size=30, names=["signup", "view", "buy"]), spec=query_strategy)
def test_retention_matches_the_reference(data: list[Row], spec: dict[str, Any]) -> None:
    first = date(2025, 3, 1) + timedelta(days=spec["days"][0])
    last = first + timedelta(days=spec["days"][1])
    query = {
        "start": {"event": spec["start"]},
        "return": {"event": spec["return"]},
        "retention_type": spec["retention_type"],
        "period": spec["period"],
        "periods": spec["periods"],
        "timezone": spec["timezone"],
        "date_from": first.isoformat(),
        "date_to": last.isoformat(),
    }
    with rolled_back():
        world = World(rows=data)
        store(world)
        parsed = RetentionQuery.from_dict(query)
        result = run_retention(parsed, use_cache=False)
        expected = reference(world, query, first, last)
        assert [c.values for c in result.cohorts] == expected["table"], query
        for (cohort, period), people in expected["cells"].items():
            if people or (cohort + period) % 3 == 0:
                got = retention_people(parsed, cohort=cohort, period=period, limit=1000)
                assert got == people, (query, cohort, period)


@pytest.mark.django_db
def test_cohorts_follow_the_time_zone_calendar(django_assert_num_queries: Any) -> None:
    """23:30 UTC on Sunday 2025-03-02 is already Monday in Kolkata: a new week there."""
    late = datetime(2025, 3, 2, 23, 30, tzinfo=ZoneInfo("UTC"))
    world = World(
        rows=[
            Row(0, 0, "signup", late, None, None, "/"),
            Row(0, 1, "view", late + timedelta(days=7), None, None, "/"),
            Row(1, 0, "signup", BASE, None, None, "/"),
        ]
    )
    store(world)
    data = {
        "start": {"event": "signup"},
        "return": {"event": "view"},
        "period": "week",
        "periods": 3,
        "date_from": "2025-02-24",
        "date_to": "2025-03-09",
    }
    with django_assert_num_queries(1):
        utc = run_retention(RetentionQuery.from_dict({**data, "timezone": "UTC"}))
    kolkata = run_retention(RetentionQuery.from_dict({**data, "timezone": "Asia/Kolkata"}))
    assert [c.values for c in utc.cohorts] == [[1, 1, 0], [1, 0, 0]]
    assert [c.values for c in kolkata.cohorts] == [[0, 0, 0], [2, 1, 0]]
    assert kolkata.cohorts[1].date == "2025-03-03T00:00:00+05:30"


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"return": {"event": "b"}}, "start", "is required"),
        ({"start": {"event": "a"}, "return": {"event": "b"}, "period": "hour"}, "period", "one of"),
        (
            {"start": {"event": "a"}, "return": {"event": "b"}, "periods": 0},
            "periods",
            "between 1 and 60",
        ),
        (
            {"start": {"event": "a"}, "return": {"event": "b"}, "retention_type": "sometimes"},
            "retention_type",
            "one of",
        ),
        (
            {"start": {"event": "a", "filter": {"and": []}}, "return": {"event": "b"}},
            "start.filter",
            "",
        ),
        (
            {
                "start": {"event": "a"},
                "return": {"event": "b"},
                "period": "day",
                "date_from": "2024-01-01",
            },
            "period",
            "at most 400 cohorts",
        ),
    ],
)
def test_bad_retention_queries_name_the_field(
    data: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(QueryError) as caught:
        RetentionQuery.from_dict(data)
    assert caught.value.field is not None
    assert caught.value.field.startswith(field)
    assert reason in caught.value.message
