"""cdp.tasks: one retry policy, one queue map, one way to enqueue after a commit."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import TestCase

from apps.segments import tasks as segment_tasks
from cdp.celery import app as celery_app
from cdp.queues import queue_names, queue_of
from cdp.tasks import TRANSIENT_DB_ERRORS, enqueue, enqueue_on_commit, transient_retry

BASE_DIR = Path(__file__).resolve().parents[1]


def test_every_registered_task_has_a_queue_a_worker_consumes() -> None:
    names = [n for n in celery_app.tasks if n.startswith("apps.")]
    assert "apps.pipeline.tasks.process_events" in names
    for name in names:
        assert queue_of(name) in queue_names(), name
        route = celery_app.amqp.router.route({}, name)
        assert route["queue"].name == queue_of(name), name


def test_the_worker_target_reads_the_queue_list() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "cdp.queues"], capture_output=True, text=True, cwd=BASE_DIR
    )
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == ",".join(queue_names())
    assert "processing" in printed.stdout
    assert "segments" in printed.stdout
    assert "-Q $$($(BIN)/python -m cdp.queues)" in (BASE_DIR / "Makefile").read_text()
    assert settings.CELERY_TASK_ROUTES["apps.segments.tasks.*"] == {"queue": "segments"}


def test_tasks_share_the_retry_policy() -> None:
    policy = transient_retry(5)
    assert policy["autoretry_for"] == TRANSIENT_DB_ERRORS
    assert (policy["retry_backoff"], policy["retry_backoff_max"]) == (2, 120)
    assert segment_tasks.recompute_segment.max_retries == 5
    assert celery_app.tasks["apps.pipeline.tasks.process_events"].max_retries == 8


@pytest.fixture
def published(monkeypatch: Any, settings: Any) -> list[tuple[Any, ...]]:
    sent: list[tuple[Any, ...]] = []
    task = segment_tasks.reevaluate_profiles
    monkeypatch.setattr(task, "apply_async", lambda args, kwargs=None, **o: sent.append(args))
    return sent


@pytest.mark.django_db
def test_enqueue_on_commit_waits_for_the_commit(published: list[tuple[Any, ...]]) -> None:
    with TestCase.captureOnCommitCallbacks(execute=True):
        enqueue_on_commit(
            "apps.segments.tasks.reevaluate_profiles", [["a", "b", "c"]], chunk=2, description="x"
        )
        assert published == []
    assert published == [(["a", "b"],), (["c"],)]


def test_a_failed_publish_is_logged_with_its_description(monkeypatch: Any, caplog: Any) -> None:
    def down(args: Any, kwargs: Any = None, **options: Any) -> None:
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(segment_tasks.recompute_segment, "apply_async", down)
    with caplog.at_level(logging.WARNING, logger="cdp.tasks"):
        assert not enqueue(segment_tasks.recompute_segment, [1], description="the recompute of 1")
    assert "Could not queue the recompute of 1 (Redis is down)" in caplog.text


def test_in_process_a_failing_task_is_raised_when_asked(monkeypatch: Any) -> None:
    assert celery_app.conf.task_always_eager

    def failing(args: Any, kwargs: Any = None, **options: Any) -> None:
        raise ValueError("the task itself failed")

    monkeypatch.setattr(segment_tasks.recompute_segment, "apply_async", failing)
    with pytest.raises(ValueError, match="itself"):
        enqueue(segment_tasks.recompute_segment, [1], description="x", eager_reraise=True)
    assert not enqueue(segment_tasks.recompute_segment, [1], description="x")


def test_an_unknown_task_name_is_refused_in_process() -> None:
    with pytest.raises(LookupError, match=r"apps\.nowhere\.tasks\.nothing"):
        enqueue("apps.nowhere.tasks.nothing", [], description="nothing")


def test_a_chunk_of_ids_shows_its_size_not_its_thousand_ids(monkeypatch: Any) -> None:
    """Monitoring (celery events, flower) shows argsrepr: a short summary of each chunk."""
    options: list[dict[str, Any]] = []
    task = segment_tasks.reevaluate_profiles
    monkeypatch.setattr(task, "apply_async", lambda args, kwargs=None, **o: options.append(o))
    ids = [f"person-{n}" for n in range(1500)]
    assert enqueue(task, [ids], chunk=1000, description="x")
    assert [o["argsrepr"] for o in options] == [
        "(['person-0', 'person-1', 'person-2', ... (1000 ids)])",
        "(['person-1000', 'person-1001', 'person-1002', ... (500 ids)])",
    ]
    message = celery_app.amqp.as_task_v2(
        "an-id", task.name, args=(ids[:1000],), argsrepr=options[0]["argsrepr"]
    )
    assert message.headers["argsrepr"] == options[0]["argsrepr"]
