"""Paths against a plain-Python reference on generated data (hypothesis): sessions split at 30
minutes of inactivity, page paths for page_view, start and end points, merged profiles."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.insights.queries import PathsQuery, QueryError, run_paths
from tests.insights.test_queries_world import BASE, Row, World, rolled_back, rows, store

GAP = timedelta(minutes=30)


def reference(world: World, query: dict[str, Any], start: Any, end: Any) -> Counter:
    by_person: dict[str, list[Row]] = {}
    for row in world.rows:
        person = world.visitor_of(row)
        if person is None or row.platform or not start <= row.ts < end:
            continue
        by_person.setdefault(person, []).append(row)
    links: Counter = Counter()
    n = query["steps"]
    for events in by_person.values():
        events.sort(key=lambda r: (r.ts, r.id))
        sessions: list[list[str]] = []
        previous = None
        for row in events:
            if previous is None or row.ts - previous > GAP:
                sessions.append([])
            sessions[-1].append(row.path if row.name == "page_view" else row.name)
            previous = row.ts
        for items in sessions:
            if query.get("start_point"):
                if query["start_point"] not in items:
                    continue
                at = items.index(query["start_point"])
                picked = list(enumerate(items[at : at + n], start=1))
            elif query.get("end_point"):
                if query["end_point"] not in items:
                    continue
                at = items.index(query["end_point"])
                chunk = items[max(0, at - n + 1) : at + 1]
                picked = list(enumerate(chunk, start=n - len(chunk) + 1))
            else:
                picked = list(enumerate(items[:n], start=1))
            for (step, item), (_, following) in itertools.pairwise(picked):
                links[(f"{step}_{item}", f"{step + 1}_{following}")] += 1
    return links


points = st.sampled_from([None, "view", "/pricing", "buy"])


@pytest.mark.django_db
@given(
    data=rows(max_size=30, names=["view", "buy", "page_view"]),
    point=points,
    at_end=st.booleans(),
    steps=st.integers(2, 4),
)
def test_paths_match_the_reference(
    data: list[Row], point: str | None, at_end: bool, steps: int
) -> None:
    start, end = BASE, BASE + timedelta(days=20)
    query: dict[str, Any] = {
        "steps": steps,
        "max_links": 200,
        "date_from": start.isoformat(),
        "date_to": end.isoformat(),
    }
    if point:
        query["end_point" if at_end else "start_point"] = point
    with rolled_back():
        world = World(rows=data)
        store(world)
        result = run_paths(PathsQuery.from_dict(query), use_cache=False)
        got = Counter({(link["source"], link["target"]): link["value"] for link in result.links})
        assert got == reference(world, query, start, end), query
        names = {node["name"] for node in result.nodes}
        for link in result.links:
            assert link["source"] in names
            assert link["target"] in names


@pytest.mark.django_db
def test_a_session_ends_after_thirty_minutes(django_assert_num_queries: Any) -> None:
    minute = timedelta(minutes=1)
    world = World(
        rows=[
            Row(0, 0, "page_view", BASE, None, None, "/"),
            Row(0, 1, "page_view", BASE + 30 * minute, None, None, "/pricing"),  # same session
            Row(0, 0, "buy", BASE + 61 * minute, None, None, "/"),  # 31 minutes later: new one
        ]
    )
    store(world)
    query = PathsQuery.from_dict({"date_from": "2025-03-03", "date_to": "2025-03-03"})
    with django_assert_num_queries(1):
        result = run_paths(query)
    assert result.links == [{"source": "1_/", "target": "2_/pricing", "value": 1}]
    assert {"name": "1_buy", "step": 1, "item": "buy", "value": 1} not in result.nodes


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"start_point": "a", "end_point": "b"}, "end_point", "not both"),
        ({"steps": 1}, "steps", "between 2 and 10"),
        ({"event_names": ["a", 3]}, "event_names[1]", "event name"),
        ({"max_links": 10_000}, "max_links", "between 1 and 200"),
    ],
)
def test_bad_paths_queries_name_the_field(data: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(QueryError) as caught:
        PathsQuery.from_dict(data)
    assert caught.value.field == field
    assert reason in caught.value.message
