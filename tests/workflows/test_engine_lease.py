"""A claimed run holds a lease: a worker killed mid-run (out of memory, SIGKILL, host lost)
leaves it running, and the redispatch gives it back once CDP_WORKFLOW_RUN_LEASE_SECONDS
passed since its claim (queued again, or waiting again when it was resumed from a delay), at
most MAX_RUN_RECOVERIES times before failing it. A running run has applied nothing, so the
recovered run's changes apply once."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.events import services as event_services
from apps.events.models import Event
from apps.pipeline import services as pipeline_services
from apps.workflows import services
from apps.workflows.engine import Execution
from apps.workflows.models import NodeTrace, RunStatus, WorkflowRun
from apps.workflows.services import storage
from apps.workflows.tasks import redispatch_queued_runs, run_rules
from tests.factories import chain, node, profile_of, published, route, track

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def unsent(monkeypatch: Any, settings: Any) -> list[list[int]]:
    """Processing and run tasks are collected instead of sent (the test runs them), and only
    lost runs are redispatched (queued ones are not old enough)."""
    sent: list[list[int]] = []
    monkeypatch.setattr(event_services, "events_publish", lambda event_ids: True)
    monkeypatch.setattr(
        run_rules, "apply_async", lambda args, kwargs=None, **options: sent.append(args[0])
    )
    settings.CDP_REDISPATCH_AFTER_SECONDS = 3600
    settings.CDP_WORKFLOW_RUN_LEASE_SECONDS = 900
    return sent


def queued_run(tracker: Any) -> WorkflowRun:
    graph = chain(
        node("n", "increment_trait", trait="signups"),
        node("e", "emit_event", event_name="welcomed"),
    )
    route(published(graph), "signup")
    track(tracker, "signup", "ann")
    pipeline_services.events_process(event_ids=list(Event.objects.values_list("id", flat=True)))
    return WorkflowRun.objects.get()


def claimed_by_a_lost_worker(run: WorkflowRun, *, seconds_ago: float = 901) -> None:
    """What a worker killed after its claim leaves: the run running, claimed long ago."""
    assert [r.pk for r in storage.runs_claim([run.pk])] == [run.pk]
    WorkflowRun.objects.filter(pk=run.pk).update(
        claimed_at=timezone.now() - timedelta(seconds=seconds_ago)
    )


def test_a_run_whose_worker_was_lost_is_queued_again_and_completes_once(
    tracker: Any, unsent: list[list[int]]
) -> None:
    run = queued_run(tracker)
    unsent.clear()
    claimed_by_a_lost_worker(run)

    assert redispatch_queued_runs.apply().get() == 1  # what celery beat triggers

    assert unsent == [[run.pk]]
    run.refresh_from_db()
    assert (run.status, run.recoveries, run.claimed_at, run.started_at) == (
        RunStatus.QUEUED,
        1,
        None,
        None,
    )
    assert profile_of("ann").traits == {}  # the lost attempt applied nothing
    assert services.runs_execute(run_ids=unsent[0]) == 1
    assert services.runs_execute(run_ids=unsent[0]) == 0  # a redelivered task
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.recoveries == 1
    assert run.claimed_at is not None
    assert profile_of("ann").traits == {"signups": 1}
    assert Event.objects.filter(event_name="welcomed").count() == 1
    assert NodeTrace.objects.filter(run=run).count() == 3
    assert services.runs_redispatch_queued() == 0


def test_a_run_within_its_lease_is_left_alone(tracker: Any, unsent: list[list[int]]) -> None:
    run = queued_run(tracker)
    unsent.clear()
    claimed_by_a_lost_worker(run, seconds_ago=890)  # maybe still working on it

    assert services.runs_redispatch_queued() == 0

    assert unsent == []
    run.refresh_from_db()
    assert (run.status, run.recoveries) == (RunStatus.RUNNING, 0)
    assert services.runs_execute(run_ids=[run.pk]) == 0  # claimed: not run twice


def test_a_run_lost_again_after_the_last_recovery_fails(
    tracker: Any, unsent: list[list[int]]
) -> None:
    run = queued_run(tracker)
    for recovery in range(1, services.MAX_RUN_RECOVERIES + 1):
        claimed_by_a_lost_worker(run)
        assert services.runs_redispatch_queued() == 1
        run.refresh_from_db()
        assert (run.status, run.recoveries) == (RunStatus.QUEUED, recovery)
    unsent.clear()
    claimed_by_a_lost_worker(run)

    assert services.runs_redispatch_queued() == 0

    assert unsent == []
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("its worker was lost 4 times"), run.error
    assert run.finished_at is not None
    assert run.state == {}
    assert services.runs_execute(run_ids=[run.pk]) == 0
    assert services.runs_redispatch_queued() == 0
    assert profile_of("ann").traits == {}


def test_a_run_lost_while_resuming_waits_again_and_resumes_from_its_delay(
    tracker: Any, monkeypatch: Any, settings: Any
) -> None:
    settings.CDP_WORKFLOW_RUN_LEASE_SECONDS = 900
    graph = chain(
        node("a", "increment_trait", trait="before"),
        node("d", "delay", seconds=0.1),
        node("b", "increment_trait", trait="after"),
    )
    route(published(graph), "signup")
    track(tracker, "signup", "ann")
    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.WAITING
    assert profile_of("ann").traits == {"before": 1}  # applied at the checkpoint
    started_at = run.started_at
    time.sleep(0.15)

    def killed(*args: Any) -> Any:
        raise SystemExit("worker killed")

    with monkeypatch.context() as patch:
        patch.setattr(Execution, "from_ports", killed)
        with pytest.raises(SystemExit):
            services.run_resume(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert run.claimed_at is not None
    assert run.started_at == started_at  # a resumed run keeps when it started
    assert services.runs_redispatch_queued() == 0  # within its lease
    WorkflowRun.objects.filter(pk=run.pk).update(claimed_at=timezone.now() - timedelta(seconds=901))

    assert services.runs_redispatch_queued() == 0  # nothing queued: it waits again

    run.refresh_from_db()
    assert (run.status, run.recoveries) == (RunStatus.WAITING, 1)
    assert run.state["pending"][0]["node"] == "d"
    assert services.runs_resume_due() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.started_at == started_at
    assert profile_of("ann").traits == {"before": 1, "after": 1}
    assert services.runs_redispatch_queued() == 0


def test_an_attempt_that_outlived_its_lease_applies_nothing(
    tracker: Any, unsent: list[list[int]], monkeypatch: Any
) -> None:
    """Fencing: while a slow attempt ran, its run was recovered and claimed by another worker;
    the slow attempt's results are dropped, so the run's changes can't apply twice."""
    run = queued_run(tracker)
    execute = Execution.from_start

    def slow_then_overtaken(self: Execution, payload: Any) -> Any:
        outcome = execute(self, payload)
        WorkflowRun.objects.filter(pk=run.pk).update(
            claimed_at=timezone.now() + timedelta(seconds=1)  # the other worker's claim
        )
        return outcome

    monkeypatch.setattr(Execution, "from_start", slow_then_overtaken)

    services.runs_execute(run_ids=[run.pk])

    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # still the other worker's to finish
    assert profile_of("ann").traits == {}
    assert not NodeTrace.objects.filter(run=run).exists()
    assert not Event.objects.filter(event_name="welcomed").exists()
