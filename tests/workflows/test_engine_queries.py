"""A batch of runs costs a bounded number of queries, not a few per run: the run_rules task
claims its runs in one go, reads their events and profiles once, applies the people
operations of all its runs with one lock and one write of their profiles, and records the runs
and their node traces in one statement each (SQLite splits the trace insert by its limit on
query parameters). Also what that batching must keep: each run's changes apply all or
nothing, and a person's second run sees the first one's changes."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.events import services as event_services
from apps.events.models import Event
from apps.pipeline import services as pipeline_services
from apps.profiles import selectors as profile_selectors
from apps.workflows import services
from apps.workflows.models import NodeTrace, RunStatus, WorkflowRun
from apps.workflows.tasks import run_rules
from tests.factories import edge, node, profile_of, published, route, track

pytestmark = pytest.mark.django_db(transaction=True)


def benchmark_graph() -> dict[str, Any]:
    """The benchmark's 6-node workflow (docs/benchmarks.md, Workflows)."""
    nodes = [
        node("start", "start"),
        node(
            "big",
            "condition",
            filter={"property": "event.properties.amount", "operator": "greater_than", "value": 10},
        ),
        node("plan", "copy_property", **{"from": "event.properties.plan", "trait": "plan"}),
        node("count", "increment_trait", trait="purchases"),
        node("last", "set_trait", trait="last_amount", value="{{ event.properties.amount }}"),
        node(
            "summary",
            "template",
            template="{{ profile.traits.plan }} buyer spent {{ event.properties.amount }}",
            variable="summary",
        ),
        node("end", "end"),
    ]
    order = [n["id"] for n in nodes]
    edges = [edge(a, b, "true" if a == "big" else "out") for a, b in itertools.pairwise(order)]
    return {"nodes": nodes, "edges": edges}


@pytest.fixture
def queued(monkeypatch: Any) -> list[list[int]]:
    """Processing is run by the test, and the run tasks it queues are collected, not run."""
    sent: list[list[int]] = []
    monkeypatch.setattr(event_services, "events_publish", lambda event_ids: True)
    monkeypatch.setattr(
        run_rules, "apply_async", lambda args, kwargs=None, **options: sent.append(args[0])
    )
    return sent


def process(tracker: Any, queued: list[list[int]], events: list[tuple[str, int]]) -> list[int]:
    """Track (person, amount) purchases, process them, and return the queued run ids."""
    for person, amount in events:
        track(tracker, "purchase", person, amount=amount, plan="pro")
    queued.clear()
    ids = list(Event.objects.filter(processed_at__isnull=True).values_list("id", flat=True))
    pipeline_services.events_process(event_ids=ids)
    return [run_id for chunk in queued for run_id in chunk]


def queries_to_execute(run_ids: list[int]) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert services.runs_execute(run_ids=run_ids) == len(run_ids)
    return len(captured.captured_queries)


def test_the_queries_of_a_batch_of_runs_do_not_grow_with_its_runs(
    tracker: Any, queued: list[list[int]]
) -> None:
    route(published(benchmark_graph()), "purchase")
    few = process(tracker, queued, [(f"few-{n}", 20 + n) for n in range(5)])
    many = process(tracker, queued, [(f"many-{n}", 20 + n) for n in range(40)])
    assert (len(few), len(many)) == (5, 40)

    small, large = queries_to_execute(few), queries_to_execute(many)

    # Before batching, each run cost about 6 queries of its own (identity, profile lock,
    # profile update, savepoints): 35 more runs would be ~210 more queries. Now the batch
    # costs the same on PostgreSQL; SQLite inserts at most 99 traces per statement.
    assert small <= 25, small
    assert large - small <= 35 * 0.1, (small, large)
    assert set(WorkflowRun.objects.values_list("status", flat=True)) == {RunStatus.SUCCEEDED}
    assert NodeTrace.objects.count() == 45 * 7
    assert profile_of("many-39").traits == {"plan": "pro", "purchases": 1, "last_amount": 59}


def test_batched_runs_apply_each_run_all_or_nothing(
    tracker: Any, queued: list[list[int]], monkeypatch: Any
) -> None:
    """In one batch: a run whose operations can't apply (incrementing a string) fails with
    nothing applied, while the runs before and after it apply theirs."""
    graph = {
        "nodes": [
            node("start", "start"),
            node("mark", "set_trait", trait="touched", value="yes"),
            node("count", "increment_trait", trait="score"),
        ],
        "edges": [edge("start", "mark"), edge("mark", "count")],
    }
    route(published(graph), "purchase")
    run_ids = process(tracker, queued, [("ann", 1), ("bob", 1), ("cid", 1)])
    # The runs execute on the profiles as read before bob's score became a string (a change
    # committed between the read and the lock): staging passes, applying must not.
    before = profile_selectors.profiles_for_distinct_ids(["ann", "bob", "cid"])
    monkeypatch.setattr(
        profile_selectors, "profiles_for_distinct_ids", lambda ids: {d: before[d] for d in ids}
    )
    profile = profile_of("bob")
    profile.traits = {"score": "high"}
    profile.save(update_fields=["traits"])

    services.runs_execute(run_ids=run_ids)

    runs = {run.distinct_id: run for run in WorkflowRun.objects.all()}
    assert runs["ann"].status == runs["cid"].status == RunStatus.SUCCEEDED
    assert runs["bob"].status == RunStatus.FAILED
    assert runs["bob"].error.startswith("applying the changes failed: increment.score")
    assert profile_of("ann").traits == {"touched": "yes", "score": 1}
    assert profile_of("cid").traits == {"touched": "yes", "score": 1}
    assert profile_of("bob").traits == {"score": "high"}  # not even `touched`


def test_a_persons_runs_in_one_batch_each_see_the_last_ones_changes(
    tracker: Any, queued: list[list[int]]
) -> None:
    route(published(benchmark_graph()), "purchase")
    run_ids = process(tracker, queued, [("ann", 20), ("bob", 30), ("ann", 40), ("ann", 50)])

    assert services.runs_execute(run_ids=run_ids) == 4

    assert profile_of("ann").traits == {"plan": "pro", "purchases": 3, "last_amount": 50}
    assert profile_of("bob").traits == {"plan": "pro", "purchases": 1, "last_amount": 30}
    summaries = [
        run.variables["summary"]
        for run in WorkflowRun.objects.filter(distinct_id="ann").order_by("event_ref")
    ]
    assert summaries == ["pro buyer spent 20", "pro buyer spent 40", "pro buyer spent 50"]
