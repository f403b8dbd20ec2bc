"""Benchmark (issue 6): events per second through processing with 10 routing rules and a
published 6-node workflow (condition, copy_property, increment_trait, set_trait, template,
end) run by a real Celery worker, against the same events with no rules, in the same run. The
rules and the workflow should cost at most 2x.

    DATABASE_URL=postgres://... REDIS_URL=redis://... python -m tests.bench.workflows
        [--events 2000] [--people 200] [--repeats 3]

Runs in a throw-away database (<name>_bench_workflows, created and dropped here), never in the
configured one, with a Celery worker (2 threads) started in this process on REDIS_URL.

Each round ingests the events in batches of 100 (as the tracking API stores them: one insert,
processing queued after the commit) and measures until every event is processed and, with the
rules, every workflow run has finished. Of the 10 rules, one routes the benchmark's `purchase`
events to the workflow and nine wait for other event names (they are in the rules table the
events are matched against, but start no run): one run per event. Rounds alternate (without,
with, without, ...) on fresh people; medians are compared.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
import uuid
from datetime import timedelta
from typing import Any

from tests.bench.common import django_setup, throwaway_database

NAME = "workflows"
LIMIT = 2.0
BATCH = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=2000, help="events per round")
    parser.add_argument("--people", type=int, default=200, help="distinct ids per round")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per setting")


def _graph() -> dict[str, Any]:
    def node(node_id: str, action: str, **config: Any) -> dict[str, Any]:
        return {"id": node_id, "action": action, "config": config}

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
    order = ["start", "big", "plan", "count", "last", "summary", "end"]
    edges = [
        {"from": a, "port": "true" if a == "big" else "out", "to": b}
        for a, b in itertools.pairwise(order)
    ]
    return {"nodes": nodes, "edges": edges}


def _setup() -> tuple[str, list[Any]]:
    from apps.sources import services as source_services
    from apps.workflows import services

    source_id = str(source_services.source_create(name=f"bench {uuid.uuid4().hex[:6]}").pk)
    workflow = services.workflow_create(name="bench", graph=_graph())
    services.workflow_publish(workflow=workflow)
    rules = [services.rule_create(name="purchases", workflow=workflow, event_name="purchase")]
    for n in range(9):
        rules.append(
            services.rule_create(name=f"other {n}", workflow=workflow, event_name=f"other_{n}")
        )
    return source_id, rules


def _rules_enabled(rules: list[Any], enabled: bool) -> None:
    from django.conf import settings

    from apps.workflows import services

    for rule in rules:
        services.rule_update(rule=rule, enabled=enabled)
    # Workers trust their cached table this long before reading the version key again.
    time.sleep(settings.CDP_SHARED_VERSION_CHECK_SECONDS + 0.5)


def _ingest(source_id: str, events: int, people: int, tag: str) -> None:
    from django.db import transaction
    from django.utils import timezone

    from apps.events.incoming import IncomingEvent
    from apps.events.services import events_dispatch
    from apps.events.storage import events_insert

    now = timezone.now()
    for start in range(0, events, BATCH):
        batch = []
        for n in range(start, min(start + BATCH, events)):
            properties = {"amount": 5 + (n * 7) % 50, "plan": ("pro", "team", "free")[n % 3]}
            batch.append(
                IncomingEvent(
                    source_id=source_id,
                    message_id=f"{tag}-{n}",
                    event_name="purchase",
                    distinct_id=f"{tag}-person-{n % people}",
                    timestamp=now - timedelta(seconds=events - n),
                    received_at=now,
                    properties=properties,
                    properties_json=f'{{"amount": {properties["amount"]}, '
                    f'"plan": "{properties["plan"]}"}}',
                )
            )
        with transaction.atomic():
            events_dispatch(events_insert(batch))


def _wait(condition: Any, what: str, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting until {what}")
        time.sleep(0.02)


def _round(source_id: str, args: argparse.Namespace, *, with_rules: bool) -> float:
    from apps.events.models import Event
    from apps.workflows.models import RunStatus, WorkflowRun

    tag = uuid.uuid4().hex[:8]
    runs_before = WorkflowRun.objects.count()
    started = time.perf_counter()
    _ingest(source_id, args.events, args.people, tag)
    _wait(lambda: not Event.objects.filter(processed_at__isnull=True).exists(), "events processed")
    if with_rules:
        # Processing records the runs (queued) as it goes: wait until every one has ended.
        unfinished = WorkflowRun.objects.filter(status__in=(RunStatus.QUEUED, RunStatus.RUNNING))
        _wait(
            lambda: (
                WorkflowRun.objects.count() - runs_before >= args.events and not unfinished.exists()
            ),
            "every run finished",
        )
    elapsed = time.perf_counter() - started
    if with_rules:
        runs = WorkflowRun.objects.filter(distinct_id__startswith=f"{tag}-")
        failed = runs.exclude(status=RunStatus.SUCCEEDED).count()
        if failed or runs.count() != args.events:
            raise RuntimeError(f"{failed} runs did not succeed: the benchmark would time nothing")
    return elapsed


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    if args is None:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args([])
    from celery.contrib.testing.worker import start_worker
    from django.db import connection

    from cdp.celery import app
    from cdp.queues import queue_names

    source_id, rules = _setup()
    without: list[float] = []
    with_rules: list[float] = []
    with start_worker(
        app,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        queues=queue_names(),
        shutdown_timeout=60,
    ):
        warm = argparse.Namespace(events=200, people=20)
        _round(source_id, warm, with_rules=True)  # warm-up: connections, plans, caches
        for _ in range(args.repeats):
            _rules_enabled(rules, False)
            without.append(_round(source_id, args, with_rules=False))
            _rules_enabled(rules, True)
            with_rules.append(_round(source_id, args, with_rules=True))
    base, ruled = statistics.median(without), statistics.median(with_rules)
    ratio = ruled / base
    return {
        "name": NAME,
        "database": connection.vendor,
        "events": args.events,
        "people": args.people,
        "repeats": args.repeats,
        "without_s": [round(t, 2) for t in without],
        "with_s": [round(t, 2) for t in with_rules],
        "without_eps": round(args.events / base),
        "with_eps": round(args.events / ruled),
        "ratio": round(ratio, 2),
        "limit": LIMIT,
        "ok": ratio <= LIMIT,
    }


def report(result: dict[str, Any]) -> str:
    return (
        f"workflows ({result['database']}): {result['events']} events, no rules "
        f"{result['without_eps']} events/s, 10 rules + 6-node workflow {result['with_eps']} "
        f"events/s (medians of {result['repeats']}); ratio {result['ratio']:.2f} "
        f"(limit {result['limit']}) -> {'OK' if result['ok'] else 'TOO SLOW'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    connection = django_setup(CELERY_TASK_ALWAYS_EAGER="false")
    from django.conf import settings

    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        print("workflows benchmark: needs DATABASE_URL (PostgreSQL) and REDIS_URL")
        return 2
    with throwaway_database("bench_workflows"):
        result = run(args)
    print(report(result))
    print(f"without rules (s): {result['without_s']}")
    print(f"with rules (s): {result['with_s']}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
