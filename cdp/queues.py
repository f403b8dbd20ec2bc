"""The Celery queue of every task, written once: settings' routes, `make worker` and tests read it.

Run as `python -m cdp.queues` to print the comma-separated queue list a worker consumes."""

from __future__ import annotations

import sys
from fnmatch import fnmatchcase

DEFAULT_QUEUE = "default"

# Task name (or a `*` glob of names) -> queue. A task not listed runs on DEFAULT_QUEUE.
QUEUES: dict[str, str] = {
    "apps.pipeline.tasks.*": "processing",
    # The names processing had before it moved to apps.pipeline (registered there for one
    # release, so messages queued by the previous version still run).
    "apps.events.tasks.process_events": "processing",
    "apps.events.tasks.process_ephemeral_events": "processing",
    "apps.segments.tasks.*": "segments",
    # Training and scoring models is CPU-heavy: its own queue, so segments never wait on it.
    "apps.segments.scoring.tasks.*": "scores",
    "apps.workflows.tasks.*": "workflows",
    # Long erases and exports: their own queue, so they never hold up event processing.
    "apps.consents.privacy.tasks.*": "privacy",
    "apps.destinations.tasks.*": "destinations",
}


def task_routes() -> dict[str, dict[str, str]]:
    """QUEUES as Celery's task_routes setting."""
    return {name: {"queue": queue} for name, queue in QUEUES.items()}


def queue_of(task_name: str) -> str:
    """The queue a task (by name) is routed to, as Celery routes it."""
    for pattern, queue in QUEUES.items():
        if fnmatchcase(task_name, pattern):
            return queue
    return DEFAULT_QUEUE


def queue_names() -> list[str]:
    """Every queue a worker must consume to run every task: the default one first."""
    return [DEFAULT_QUEUE, *sorted(set(QUEUES.values()) - {DEFAULT_QUEUE})]


if __name__ == "__main__":
    sys.stdout.write(",".join(queue_names()) + "\n")
