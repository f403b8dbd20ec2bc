"""Funnels against a plain-Python reference on generated data (hypothesis): ordered and strict
modes, windows, exclusions, merged profiles, first-touch breakdown; the people behind a step;
validation errors; one query per run."""

from __future__ import annotations

import statistics
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.insights.queries import FunnelQuery, QueryError, funnel_people, run_funnel
from tests.insights.test_queries_world import BASE, Row, World, rolled_back, rows, store

STEP_NAMES = ["signup", "view", "buy"]


def _matches(row: Row, step: dict[str, Any]) -> bool:
    if step["event"] == "*":
        return not row.platform
    if row.name != step["event"]:
        return False
    return step.get("plan") is None or row.plan == step["plan"]


def reference(world: World, query: dict[str, Any], start: Any, end: Any) -> dict[str, Any]:
    """For every step-1 event a chain walks forward greedily; the person counts at the
    furthest step any unspoiled chain reached (the latest such chain gives the times)."""
    steps, exclusions = query["steps"], query.get("exclusions", [])
    window = timedelta(days=query["window"]["value"])
    strict = query.get("mode") == "strict"
    n = len(steps)
    by_person: dict[str, list[Row]] = {}
    for row in world.rows:
        person = world.person_of(row)
        if person is None or not start <= row.ts < end + window:
            continue
        relevant = any(_matches(row, s) for s in steps + exclusions)
        if strict:
            relevant = not row.platform
        if relevant:
            by_person.setdefault(person, []).append(row)
    best: dict[str, tuple[int, int, list[Any], Row]] = {}
    for person, events in by_person.items():
        events.sort(key=lambda r: (r.ts, r.id))
        for s, first in enumerate(events):
            if not _matches(first, steps[0]) or first.ts >= end:
                continue
            progress, times, spoiled = 1, [first.ts], False
            for later in events[s + 1 :]:
                if progress == n or later.ts - first.ts > window:
                    break
                for exclusion in exclusions:
                    if (
                        _matches(later, exclusion)
                        and exclusion["from_step"] < progress <= exclusion["to_step"]
                    ):
                        spoiled = True
                if _matches(later, steps[progress]):
                    progress += 1
                    times.append(later.ts)
                elif strict:
                    break
            if spoiled:
                continue
            if person not in best or (progress, s) >= best[person][:2]:
                best[person] = (progress, s, times, first)
    counts = [sum(1 for b in best.values() if b[0] > k) for k in range(n)]
    medians, averages = [], []
    for k in range(1, n):
        gaps = [(b[2][k] - b[2][k - 1]).total_seconds() for b in best.values() if b[0] > k]
        medians.append(statistics.median(gaps) if gaps else None)
        averages.append(sum(gaps) / len(gaps) if gaps else None)
    return {"counts": counts, "medians": medians, "averages": averages, "best": best}


step_plan = st.sampled_from([None, None, "pro"])
query_strategy = st.fixed_dictionaries(
    {
        "steps": st.lists(
            st.tuples(st.sampled_from([*STEP_NAMES, "*"]), step_plan), min_size=2, max_size=4
        ),
        "window": st.integers(1, 10),
        "mode": st.sampled_from(["ordered", "strict"]),
        "exclusion": st.one_of(
            st.none(), st.tuples(st.sampled_from(["leave", "view"]), st.integers(0, 2))
        ),
        "range": st.tuples(st.integers(0, 20), st.integers(1, 25)),
    }
)


def _query(spec: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    steps = []
    for event, plan in spec["steps"]:
        step: dict[str, Any] = {"event": event}
        if plan and event != "*":
            step["filter"] = f'event.properties.plan is "{plan}"'
            step["plan"] = plan
        steps.append(step)
    start = BASE + timedelta(days=spec["range"][0])
    end = start + timedelta(days=spec["range"][1])
    query: dict[str, Any] = {
        "steps": steps,
        "window": {"value": spec["window"], "unit": "day"},
        "mode": spec["mode"],
        "date_from": start.isoformat(),
        "date_to": end.isoformat(),
    }
    if spec["exclusion"]:
        name, low = spec["exclusion"]
        low = min(low, len(steps) - 2)
        query["exclusions"] = [{"event": name, "from_step": low, "to_step": low + 1}]
    return query, start, end


def _api_query(query: dict[str, Any]) -> dict[str, Any]:
    return {
        **query,
        "steps": [{k: v for k, v in s.items() if k != "plan"} for s in query["steps"]],
    }


@pytest.mark.django_db
@given(data=rows(max_size=25), spec=query_strategy)
def test_funnel_matches_the_reference(data: list[Row], spec: dict[str, Any]) -> None:
    query, start, end = _query(spec)
    with rolled_back():
        world = World(rows=data)
        store(world)
        parsed = FunnelQuery.from_dict(_api_query(query))
        result = run_funnel(parsed, use_cache=False)
        expected = reference(world, query, start, end)
        steps = result.overall.steps
        assert [s.count for s in steps] == expected["counts"], query
        for k in range(1, len(steps)):
            assert _close(steps[k].median_seconds, expected["medians"][k - 1]), query
            assert _close(steps[k].average_seconds, expected["averages"][k - 1]), query
            assert steps[k].dropped == expected["counts"][k - 1] - expected["counts"][k]
        # The people behind each step: converted and dropped.
        best = expected["best"]
        for k in range(len(steps)):
            converted = funnel_people(parsed, step=k, status="converted", limit=1000)
            assert converted == sorted(p for p, b in best.items() if b[0] > k)
            if k:
                dropped = funnel_people(parsed, step=k, status="dropped", limit=1000)
                assert dropped == sorted(p for p, b in best.items() if b[0] == k)


def _close(got: float | None, want: float | None) -> bool:
    if want is None:
        return got is None
    return got is not None and abs(got - want) < 1e-3


@pytest.mark.django_db
@given(data=rows(max_size=25))
def test_funnel_breakdown_is_first_touch(data: list[Row]) -> None:
    """Each person lands in the breakdown value of their first step-1 event in range."""
    query, start, end = _query(
        {
            "steps": [("signup", None), ("buy", None)],
            "window": 14,
            "mode": "ordered",
            "exclusion": None,
            "range": (0, 30),
        }
    )
    query["breakdown"] = {"type": "event", "key": "plan"}
    with rolled_back():
        world = World(rows=data)
        store(world)
        result = run_funnel(FunnelQuery.from_dict(query), use_cache=False)
        expected = reference(world, query, start, end)
        first: dict[str, str] = {}
        for row in sorted(world.rows, key=lambda r: (r.ts, r.id)):
            person = world.person_of(row)
            if person and row.name == "signup" and start <= row.ts < end and person not in first:
                first[person] = row.plan or ""
        want: dict[str, list[int]] = {}
        for person, b in expected["best"].items():
            counts = want.setdefault(first[person], [0, 0])
            counts[0] += 1
            counts[1] += b[0] > 1
        got = {b.breakdown_value: [s.count for s in b.steps] for b in result.breakdowns}
        assert got == want
        assert [s.count for s in result.overall.steps] == expected["counts"]


@pytest.mark.django_db
def test_window_boundary_is_inclusive_and_a_later_start_restarts() -> None:
    day = timedelta(days=1)
    data = [
        Row(0, 0, "signup", BASE, None, None, "/"),
        Row(0, 1, "buy", BASE + 14 * day, None, None, "/"),  # exactly at the window's end
        Row(1, 0, "signup", BASE, None, None, "/"),
        Row(1, 0, "buy", BASE + 14 * day + timedelta(seconds=1), None, None, "/"),  # too late
        Row(2, 0, "signup", BASE, None, None, "/"),
        Row(2, 1, "signup", BASE + 10 * day, None, None, "/"),  # restarts the chain
        Row(2, 0, "buy", BASE + 20 * day, None, None, "/"),
    ]
    world = World(rows=data)
    store(world)
    query = FunnelQuery.from_dict(
        {
            "steps": [{"event": "signup"}, {"event": "buy"}],
            "date_from": "2025-03-01",
            "date_to": "2025-03-31",
        }
    )
    result = run_funnel(query)
    assert [s.count for s in result.overall.steps] == [3, 2]
    assert funnel_people(query, step=1, status="dropped") == [world.people[1]]
    assert result.overall.steps[1].median_seconds == 12 * 86400  # 14 days and 10 days


@pytest.mark.django_db
def test_a_funnel_is_one_query(django_assert_num_queries: Any) -> None:
    store(World(rows=[Row(0, 0, "signup", BASE, "pro", 1, "/")]))
    query = FunnelQuery.from_dict(
        {
            "steps": [
                {"event": "signup", "filter": 'event.properties.plan is "pro"'},
                {"event": "buy"},
                {"event": "view"},
            ],
            "exclusions": [{"event": "leave", "from_step": 0, "to_step": 1}],
            "breakdown": {"type": "trait", "key": "plan"},
            "date_from": "2025-03-01",
            "date_to": "2025-03-31",
        }
    )
    with django_assert_num_queries(1):
        result = run_funnel(query)
    assert result.overall.steps[0].count == 1
    with django_assert_num_queries(0):  # cached
        run_funnel(query)


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"steps": [{"event": "a"}]}, "steps", "between 2 and 10"),
        ({"steps": [{"event": "a"}] * 11}, "steps", "between 2 and 10"),
        ({"steps": [{"event": "a"}, {}]}, "steps[1].event", "is required"),
        ({"steps": [{"event": "a"}, {"event": "b", "filter": "plan is"}]}, "steps[1].filter", ""),
        (
            {"steps": [{"event": "a"}, {"event": "b"}], "window": {"value": 91, "unit": "day"}},
            "window.value",
            "90 days",
        ),
        ({"steps": [{"event": "a"}, {"event": "b"}], "mode": "loose"}, "mode", "one of"),
        (
            {
                "steps": [{"event": "a"}, {"event": "b"}],
                "exclusions": [{"event": "x", "from_step": 1, "to_step": 1}],
            },
            "exclusions[0].from_step",
            "between 0 and 0",
        ),
        (
            {"steps": [{"event": "a"}, {"event": "b"}], "date_from": "yesterday-ish"},
            "date_from",
            "date",
        ),
        (
            {"steps": [{"event": "a"}, {"event": "b"}], "timezone": "Mars/Base"},
            "timezone",
            "unknown time zone",
        ),
        ({"steps": [{"event": "a"}, {"event": "b"}], "colour": "red"}, "colour", "unknown field"),
    ],
)
def test_bad_funnel_queries_name_the_field(data: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(QueryError) as caught:
        FunnelQuery.from_dict(data)
    assert caught.value.field == field
    assert reason in caught.value.message
