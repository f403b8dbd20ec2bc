"""Trends against a plain-Python reference on generated data (hypothesis): every math, every
interval, time zones with DST changes, breakdowns by event property and trait, merged
profiles; comparison with the previous period; validation errors; query counts."""

from __future__ import annotations

import statistics
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.insights.queries import QueryError, TrendsQuery, run_trends
from tests.insights.test_queries_world import BASE, Row, World, rolled_back, rows, store

ZONES = ["UTC", "America/New_York", "Asia/Kolkata"]


def local_period(ts: datetime, interval: str, tz: str) -> str:
    local = ts.astimezone(ZoneInfo(tz))
    if interval == "hour":
        start = local.replace(minute=0, second=0, microsecond=0)
        return start.isoformat()
    day = local.date()
    if interval == "week":
        day -= timedelta(days=day.weekday())
    if interval == "month":
        day = day.replace(day=1)
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz)).isoformat()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def reference(world: World, series: dict[str, Any], query: dict[str, Any], start: Any, end: Any):
    breakdown = query.get("breakdown")
    traits = {p: ("pro" if i % 2 else "free") for i, p in enumerate(world.people)}
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in world.rows:
        if not start <= row.ts < end:
            continue
        if series["event"] == "*":
            if row.platform:
                continue
        elif row.name != series["event"]:
            continue
        person = world.person_of(row)
        needs_person = series["math"] == "unique_people" or (
            breakdown and breakdown["type"] == "trait"
        )
        if needs_person and person is None:
            continue
        value = ""
        if breakdown and breakdown["type"] == "event":
            value = row.plan or ""
        elif breakdown:
            value = traits[person]  # type: ignore[index]
        key = (value, local_period(row.ts, query["interval"], query["timezone"]))
        groups.setdefault(key, []).append(row)
    out = {}
    for key, members in groups.items():
        math = series["math"]
        numbers = [n for n in (_number(r.amount) for r in members) if n is not None]
        if math == "total":
            amount = float(len(members))
        elif math == "unique_people":
            amount = float(len({world.person_of(r) for r in members}))
        elif not numbers:
            amount = 0.0
        else:
            functions: dict[str, Any] = {
                "sum": sum,
                "avg": statistics.fmean,
                "min": min,
                "max": max,
                "median": statistics.median,
            }
            amount = functions[math](numbers)
        if amount:
            out[key] = float(amount)
    return out


query_strategy = st.fixed_dictionaries(
    {
        "event": st.sampled_from(["view", "buy", "*"]),
        "math": st.sampled_from(["total", "unique_people", "sum", "avg", "min", "max", "median"]),
        "interval": st.sampled_from(["hour", "day", "week", "month"]),
        "timezone": st.sampled_from(ZONES),
        "breakdown": st.sampled_from([None, "event", "trait"]),
        "days": st.tuples(st.integers(0, 10), st.integers(1, 30)),
    }
)


def _query(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], Any, Any]:
    zone = ZoneInfo(spec["timezone"])
    first = date(2025, 3, 1) + timedelta(days=spec["days"][0])
    last = first + timedelta(days=spec["days"][1])
    series: dict[str, Any] = {"event": spec["event"], "math": spec["math"]}
    if spec["math"] not in ("total", "unique_people"):
        series["property"] = "amount"
    query: dict[str, Any] = {
        "series": [series],
        "interval": spec["interval"],
        "timezone": spec["timezone"],
        "date_from": first.isoformat(),
        "date_to": last.isoformat(),
    }
    if spec["breakdown"]:
        query["breakdown"] = {"type": spec["breakdown"], "key": "plan"}
    start = datetime(first.year, first.month, first.day, tzinfo=zone)
    after = last + timedelta(days=1)
    end = datetime(after.year, after.month, after.day, tzinfo=zone)
    return query, series, start, end


@pytest.mark.django_db
@given(data=rows(max_size=30), spec=query_strategy)
def test_trends_match_the_reference(data: list[Row], spec: dict[str, Any]) -> None:
    query, series, start, end = _query(spec)
    with rolled_back():
        world = World(rows=data)
        store(world)
        result = run_trends(TrendsQuery.from_dict(query), use_cache=False)
        got = {}
        for line in result.lines:
            for day, value in zip(line.days, line.data, strict=True):
                if value:
                    got[(line.breakdown_value or "", day)] = value
        want = reference(world, series, query, start, end)
        assert got.keys() == want.keys(), query
        for key, value in want.items():
            assert got[key] == pytest.approx(value), (query, key)
        # Every period of the range is listed, in order (a breakdown of nothing has no lines).
        assert result.lines or query.get("breakdown")
        if not result.lines:
            return
        days = result.lines[0].days
        assert days == sorted(days, key=datetime.fromisoformat)
        assert days[0] == local_period(start, query["interval"], query["timezone"])
        assert days[-1] == local_period(
            end - timedelta(microseconds=1), query["interval"], query["timezone"]
        )


@pytest.mark.django_db
def test_compare_returns_the_previous_period_aligned() -> None:
    day = timedelta(days=1)
    world = World(
        rows=[
            Row(0, 0, "view", BASE + 7 * day, None, 1, "/"),  # current: 2025-03-10
            Row(1, 1, "view", BASE + 7 * day, None, 1, "/"),
            Row(0, 1, "view", BASE, None, 1, "/"),  # previous: 2025-03-03
        ]
    )
    store(world)
    result = run_trends(
        TrendsQuery.from_dict(
            {
                "series": [{"event": "view", "math": "unique_people"}],
                "date_from": "2025-03-10",
                "date_to": "2025-03-16",
                "compare": True,
            }
        )
    )
    current, previous = result.lines
    assert (current.compare, previous.compare) == ("current", "previous")
    assert current.data[0] == 2
    assert previous.data[0] == 1  # the same person through either of their ids
    assert previous.days[0].startswith("2025-03-03")


@pytest.mark.django_db
def test_breakdown_keeps_the_top_ten_and_folds_the_rest(django_assert_num_queries: Any) -> None:
    world = World(rows=[])
    store(world)
    from apps.events.models import Event

    source_id = Event.objects.values_list("source_id", flat=True).first()
    assert source_id is None
    world = World(
        rows=[
            Row(0, 0, "view", BASE + timedelta(minutes=i), f"plan{i % 12}", 1, "/")
            for i in range(12 * 2 + 1)
        ]
    )
    store(world)
    query = TrendsQuery.from_dict(
        {
            "series": [{"event": "view"}],
            "breakdown": {"type": "event", "key": "plan"},
            "date_from": "2025-03-03",
            "date_to": "2025-03-03",
        }
    )
    with django_assert_num_queries(1):
        result = run_trends(query)
    values = [line.breakdown_value for line in result.lines]
    assert len(values) == 11
    assert values[-1] == "$other"
    assert values[0] == "plan0"  # three events, the others two
    assert result.lines[-1].total == 4
    assert sum(line.total for line in result.lines) == 25


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({}, "series", "between 1 and 10"),
        ({"series": [{"event": "a", "math": "p99"}]}, "series[0].math", "one of"),
        ({"series": [{"event": "a", "math": "sum"}]}, "series[0].property", "is required"),
        ({"series": [{"event": "a", "property": "x"}]}, "series[0].property", "only for math"),
        (
            {"series": [{"event": "a", "filter": "event.properties.plan frobs 1"}]},
            "series[0].filter",
            "",
        ),
        ({"series": [{"event": "a"}], "interval": "minute"}, "interval", "one of"),
        (
            {"series": [{"event": "a"}], "interval": "hour", "date_from": "-1y"},
            "interval",
            "too many hours",
        ),
        (
            {"series": [{"event": "a"}], "date_from": "2025-03-10", "date_to": "2025-03-01"},
            "date_to",
            "after date_from",
        ),
        (
            {"series": [{"event": "a"}], "breakdown": {"type": "cohort", "key": "x"}},
            "breakdown.type",
            "one of",
        ),
        ({"series": [{"event": ""}]}, "series[0].event", "non-empty"),
    ],
)
def test_bad_trends_queries_name_the_field(data: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(QueryError) as caught:
        TrendsQuery.from_dict(data)
    assert caught.value.field is not None
    assert caught.value.field.startswith(field)
    assert reason in caught.value.message


def test_a_text_filter_error_points_at_the_position() -> None:
    with pytest.raises(QueryError) as caught:
        TrendsQuery.from_dict({"series": [{"event": "a"}], "filter": 'event.name is "a" and'})
    assert caught.value.code == "invalid_filter"
    assert caught.value.field == "filter"
    assert caught.value.position is not None
