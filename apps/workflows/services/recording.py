"""Recording executed runs: applying their changes, saving how they ended, their traces, and
scheduling the resumption of those waiting at a delay."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.db import transaction
from django.utils import timezone

from apps.profiles.locks import person_locks_hold
from apps.profiles.services import people_apply_many
from apps.workflows.actions import ActionError
from apps.workflows.context import EffectKind, RunContext
from apps.workflows.effects import effects_apply, people_errors_message, people_only, people_steps
from apps.workflows.engine import Outcome, json_safe
from apps.workflows.models import RunStatus, WorkflowRun
from apps.workflows.services.storage import (
    claims_held,
    runs_update,
    traces_insert,
)
from cdp.celery import app as celery_app
from cdp.errors import DomainError
from cdp.tasks import enqueue

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ExecutedRun:
    """An executed run, waiting to be recorded with its changes."""

    run: WorkflowRun
    ctx: RunContext
    outcome: Outcome


def run_apply(done: ExecutedRun) -> None:
    """Apply a run's changes (in a savepoint of the caller's transaction) and set its final
    fields. A failed run, or changes that can't apply, apply nothing."""
    run, ctx, outcome = done.run, done.ctx, done.outcome
    status, error = outcome.status, outcome.error
    if status != RunStatus.FAILED and ctx.effects:
        try:
            with transaction.atomic():
                effects_apply(ctx, ctx.effects)
        except Exception as exc:  # any failure here fails the run, with nothing applied
            if not isinstance(exc, DomainError | ActionError):
                logger.exception("Workflow run %s: its changes could not be applied", run.pk)
            status, error = RunStatus.FAILED, f"applying the changes failed: {exc}"
    _finish(done, status, error)


def _people_only(done: ExecutedRun) -> bool:
    """A run whose changes are people operations only: applied with others' in one go."""
    return (
        done.outcome.status != RunStatus.FAILED
        and bool(done.ctx.effects)
        and people_only(done.ctx.effects)
    )


def _apply_people(group: list[ExecutedRun]) -> None:
    """Apply the people operations of runs that change nothing else, together (one read,
    lock and write of their profiles: people_apply_many), each run all or nothing as
    effects_apply in a savepoint would, and set their final fields."""
    results = people_apply_many(
        changes=[(item.ctx.distinct_id, people_steps(item.ctx.effects)) for item in group]
    )
    for item, result in zip(group, results, strict=True):
        if result.errors:
            message = people_errors_message(result.errors)
            _finish(item, RunStatus.FAILED, f"applying the changes failed: {message}")
        else:
            _finish(item, item.outcome.status, item.outcome.error)


def _apply_all(done: list[ExecutedRun]) -> None:
    """Apply the runs' changes in order: consecutive runs that only change people's traits
    together (_apply_people), the others one by one (run_apply)."""
    group: list[ExecutedRun] = []
    for item in done:
        if _people_only(item):
            group.append(item)
            continue
        if item.outcome.status == RunStatus.FAILED or not item.ctx.effects:
            _finish(item, item.outcome.status, item.outcome.error)  # nothing to apply
            continue
        if group:
            _apply_people(group)
            group = []
        run_apply(item)
    if group:
        _apply_people(group)


def _finish(done: ExecutedRun, status: RunStatus, error: str) -> None:
    """Set a run's final fields (saved by runs_update or save)."""
    run, ctx, outcome = done.run, done.ctx, done.outcome
    now = timezone.now()
    run.status = status
    run.error = error[:4000]
    run.variables = json_safe(ctx.variables)
    if status == RunStatus.WAITING:
        state = {
            "pending": outcome.pending,
            "run_key": ctx.run_key,
            "resumes": run.state.get("resumes", 0),
        }
        if "event" in run.state:  # an ephemeral event: kept until the run ends
            state["event"] = run.state["event"]
        run.state = state
        run.resume_at = min(datetime.fromisoformat(p["due"]) for p in outcome.pending)
    else:
        run.state = {}
        run.resume_at = None
        run.finished_at = now
        assert run.started_at is not None
        run.duration_ms = max(round((now - run.started_at).total_seconds() * 1000), 0)


def people_touched(done: list[ExecutedRun]) -> set[str]:
    """The distinct ids (and merge identifiers) whose profiles the runs' changes write."""
    people: set[str] = set()
    for item in done:
        if item.outcome.status == RunStatus.FAILED or not item.ctx.effects:
            continue
        people.add(item.ctx.distinct_id)
        for effect in item.ctx.effects:
            if effect.kind == EffectKind.MERGE_BY:
                people.add(effect.data["identifier"])
    return people


def runs_record(done: list[ExecutedRun], dropped: Sequence[int] = ()) -> None:
    """Apply and record executed runs in one transaction (one commit for a batch of runs):
    each run's changes in its own savepoint, then the runs and their traces in bulk. Runs
    whose rule no longer applies (`dropped`) are deleted, as if they never matched."""
    if not done and not dropped:
        return
    with transaction.atomic():
        if done:
            held = claims_held([item.run for item in done])
            if len(held) < len(done):
                logger.warning(
                    "%d workflow run(s) outlived their lease (CDP_WORKFLOW_RUN_LEASE_SECONDS) "
                    "and were given to another worker: this attempt's results are dropped",
                    len(done) - len(held),
                )
                done = [item for item in done if item.run.pk in held]
        # The people whose profiles change are locked as processing locks them (all at once,
        # in one order: no deadlock), so a merge_by or an identify here can't interleave with
        # the processing of the same person.
        person_locks_hold(distinct_ids=people_touched(done))
        _apply_all(done)
        if done:
            runs_update([item.run for item in done])
            traces_insert([(item.run, item.outcome.records) for item in done])
        for item in done:
            if item.run.status == RunStatus.WAITING:
                resume_schedule(item.run)
        if dropped:
            WorkflowRun.objects.filter(pk__in=dropped).delete()


def resume_schedule(run: WorkflowRun) -> None:
    assert run.resume_at is not None
    transaction.on_commit(partial(run_resume_send, run.pk, run.resume_at))


RESUME_RUN_TASK = "apps.workflows.tasks.resume_run"


def run_resume_send(run_id: int, due: datetime) -> None:
    """Schedule the run's resumption at `due`. A failure is logged: the run stays waiting
    (resume_at) and runs_resume_due (beat) picks it up once it is due."""
    if celery_app.conf.task_always_eager:
        # An in-process apply_async(eta=...) would run at once, skipping the wait: the run
        # stays waiting (resume_at) until runs_resume_due picks it up once it is due (after
        # processing commits in the embedded default, or the beat task).
        logger.info("Run %s waits until %s (tasks run in-process: not scheduled)", run_id, due)
        return
    enqueue(
        RESUME_RUN_TASK,
        [run_id],
        description=f"the resumption of run {run_id}; runs_resume_due picks it up",
        eta=due,
        log_level=logging.ERROR,
    )
