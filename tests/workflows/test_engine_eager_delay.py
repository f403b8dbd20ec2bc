"""The embedded default runs tasks in-process (eager), where an apply_async(eta=...) would
run at once and skip the wait: a delay leaves the run waiting (resume_at), and due runs are
resumed after processing commits (there is no beat without a broker), or by runs_resume_due."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.utils import timezone

from apps.workflows import services
from apps.workflows.models import RunStatus, WorkflowRun
from apps.workflows.tasks import resume_run
from cdp.celery import app as celery_app
from tests.factories import chain, node, profile_of, published, route, track

pytestmark = pytest.mark.django_db


def delayed(seconds: float) -> Any:
    graph = chain(
        node("a", "set_trait", trait="step", value=1),
        node("d", "delay", seconds=seconds),
        node("b", "set_trait", trait="step", value=2),
    )
    return route(published(graph), "signup")


def test_an_eager_delay_waits_and_resumes_when_processing_runs_after_it_is_due(
    tracker: Any, monkeypatch: Any
) -> None:
    assert celery_app.conf.task_always_eager
    sent: list[dict[str, Any]] = []
    apply_async = resume_run.apply_async

    def spy(*args: Any, **options: Any) -> Any:
        sent.append(options)
        return apply_async(*args, **options)

    monkeypatch.setattr(resume_run, "apply_async", spy)
    delayed(1.0)
    begin = timezone.now()

    track(tracker, "signup", "ann")

    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.WAITING
    assert run.resume_at is not None
    assert 0.5 < (run.resume_at - begin).total_seconds() < 2
    assert profile_of("ann").traits == {"step": 1}
    assert sent == []  # nothing is scheduled in-process: it would run at once
    track(tracker, "page_view", "bob")  # processing before the run is due: still waiting
    run.refresh_from_db()
    assert run.status == RunStatus.WAITING

    time.sleep(max((run.resume_at - timezone.now()).total_seconds(), 0) + 0.05)
    track(tracker, "page_view", "bob")  # any processing resumes the due runs

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.resume_at is None
    assert profile_of("ann").traits == {"step": 2}
    assert len(sent) == 1
    assert not {"eta", "countdown"} & set(sent[0])  # resumed when due, not scheduled
    assert services.runs_resume_due() == 0


def test_runs_resume_due_resumes_an_eager_delay_without_new_events(tracker: Any) -> None:
    delayed(0.2)
    track(tracker, "signup", "ann")
    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.WAITING
    assert services.runs_resume_due() == 0  # not due yet
    time.sleep(0.3)
    assert services.runs_resume_due() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert profile_of("ann").traits == {"step": 2}
