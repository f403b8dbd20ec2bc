"""Executing queued runs (claim, check the rule's condition, execute, record), resuming runs
after a delay, and purging old runs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.events.models import Event
from apps.profiles.locks import person_locks_hold
from apps.profiles.models import Profile
from apps.segments.filtering import evaluate
from apps.workflows import tasks
from apps.workflows.engine import Execution, Outcome
from apps.workflows.matching import rules_cache_clear, rules_table
from apps.workflows.models import NodeTrace, RunStatus, WorkflowRun
from apps.workflows.services.inputs import (
    event_from_payload,
    profile_for,
    profiles_for,
    run_context,
    run_event,
    version_graph,
)
from apps.workflows.services.recording import (
    ExecutedRun,
    people_touched,
    resume_schedule,
    run_apply,
    run_resume_send,
    runs_record,
)
from apps.workflows.services.storage import (
    RECORDED_FIELDS,
    claims_held,
    runs_claim,
    traces_insert,
)

logger = logging.getLogger(__name__)


def runs_execute(*, run_ids: Sequence[int]) -> int:
    """Run queued runs (the run_rules task): claim them, evaluate each rule's condition (a
    false one deletes the run, as if the rule had not matched), execute the workflow
    versions, then apply and record the runs, in one transaction per batch, except that a
    person's second run waits for the first one's changes to commit (it must see them). Runs
    already claimed or ended are skipped. Returns how many runs were executed."""
    runs = runs_claim(run_ids)
    if not runs:
        return 0
    try:
        return _runs_run(runs)
    except BaseException:
        # Runs claimed but not recorded go back to the queue, so the task's retry (or the
        # redispatch) runs them; recorded ones are past running and stay as they are.
        try:
            WorkflowRun.objects.filter(
                pk__in=[run.pk for run in runs], status=RunStatus.RUNNING
            ).update(status=RunStatus.QUEUED, started_at=None, claimed_at=None)
        except Exception:
            logger.exception("Could not give back %d claimed workflow runs", len(runs))
        raise


def _runs_run(runs: list[WorkflowRun]) -> int:
    table = rules_table()
    if any(run.rule_id not in table.by_id for run in runs):
        # Processing may have matched a rule this process has not loaded yet: reload once
        # before concluding that the rule was disabled or deleted.
        rules_cache_clear()
        table = rules_table()
    refs = [run.event_ref for run in runs if run.event_ref is not None]
    events = (
        {e.pk: e for e in Event.objects.filter(pk__in=refs).select_related("session", "source")}
        if refs
        else {}
    )
    people: dict[str, Profile | None] = {
        **profiles_for(sorted({run.distinct_id for run in runs if run.distinct_id}))
    }
    done: list[ExecutedRun] = []
    dropped: list[int] = []
    seen: set[str] = set()
    count = 0
    for run in runs:
        rule = table.by_id.get(run.rule_id) if run.rule_id is not None else None
        if rule is None:
            dropped.append(run.pk)  # the rule was disabled or deleted since the event matched
            continue
        event = run_event(run, events)
        if event is None or run.version_id is None:
            done.append(_gone(run, "event" if event is None else "workflow version"))
            continue
        if event.distinct_id in seen:
            # This person's earlier run must be committed, and its changes read back.
            runs_record(done, dropped)
            count += len(done)
            done, dropped, seen = [], [], set()
            people[event.distinct_id] = profile_for(event.distinct_id)
        profile = people.get(event.distinct_id)
        if rule.condition is not None and not evaluate(
            rule.condition, profile=profile, event=event
        ):
            dropped.append(run.pk)
            continue
        done.append(_execute(run=run, event=event, profile=profile))
        seen.add(event.distinct_id)
    runs_record(done, dropped)
    return count + len(done)


def _execute(*, run: WorkflowRun, event: Event, profile: Profile | None) -> ExecutedRun:
    """Execute a claimed run's workflow version for its event (nothing is written yet)."""
    assert run.version_id is not None
    run_key = (
        f"{run.event_ref}-{run.rule_id}"
        if run.event_ref is not None
        else f"e-{event.message_id}-{run.rule_id}"
    )
    ctx = run_context(
        workflow_id=run.workflow_id, event=event, profile=profile, run_key=run_key, depth=run.depth
    )
    if profile is not None:
        run.profile_id = profile.pk
    outcome = Execution(version_graph(run.version_id), ctx).from_start(ctx.event_view)
    return ExecutedRun(run, ctx, outcome)


def _gone(run: WorkflowRun, what: str) -> ExecutedRun:
    """A run that can't execute: recorded as failed."""
    ctx = run_context(
        workflow_id=run.workflow_id,
        event=event_from_payload({"distinct_id": run.distinct_id}),
        profile=None,
        run_key=f"run-{run.pk}",
        depth=run.depth,
    )
    return ExecutedRun(run, ctx, Outcome(RunStatus.FAILED, f"the run's {what} no longer exists"))


def run_resume(*, run_id: int) -> WorkflowRun | None:
    """Continue a waiting run from its delays that are due (the resume_run task). Runs not
    waiting (already resumed, or claimed by another worker) are left alone."""
    now = timezone.now()
    run = WorkflowRun.objects.filter(pk=run_id, status=RunStatus.WAITING).first()
    if run is None:
        return None
    pending = run.state.get("pending", [])
    due = [p for p in pending if datetime.fromisoformat(p["due"]) <= now]
    later = [p for p in pending if p not in due]
    if not due:
        run_resume_send(run.pk, min(datetime.fromisoformat(p["due"]) for p in later))
        return run
    # The run keeps its started_at; the claim (its lease) starts now.
    claimed = WorkflowRun.objects.filter(pk=run_id, status=RunStatus.WAITING).update(
        status=RunStatus.RUNNING, claimed_at=now
    )
    if not claimed:
        return None
    run.status, run.claimed_at = RunStatus.RUNNING, now
    resumes = int(run.state.get("resumes", 0)) + 1
    run.state = {**run.state, "resumes": resumes}
    event = (
        Event.objects.select_related("session", "source").filter(pk=run.event_ref).first()
        if run.event_ref is not None
        else run_event(run, {})
    )
    if event is None or run.version_id is None:
        with transaction.atomic():
            run.status = RunStatus.FAILED
            run.error = "the run's event or workflow version no longer exists"
            run.finished_at = now
            run.state, run.resume_at = {}, None
            run.save(update_fields=["status", "error", "state", "resume_at", "finished_at"])
        return run
    profile = profile_for(event.distinct_id)
    ctx = run_context(
        workflow_id=run.workflow_id,
        event=event,
        profile=profile,
        run_key=f"{run.state.get('run_key', run.pk)}-r{resumes}",
        variables=run.variables,
        depth=run.depth,
    )
    outcome = Execution(version_graph(run.version_id), ctx).from_ports(
        [(p["node"], p["port"], p["payload"]) for p in due]
    )
    if outcome.status != RunStatus.FAILED:
        outcome.pending = later + outcome.pending
        if outcome.pending:
            outcome.status = RunStatus.WAITING
    item = ExecutedRun(run, ctx, outcome)
    with transaction.atomic():
        if not claims_held([run]):
            logger.warning(
                "Workflow run %s outlived its lease (CDP_WORKFLOW_RUN_LEASE_SECONDS) and was "
                "given back: this attempt's results are dropped",
                run.pk,
            )
            return None
        person_locks_hold(distinct_ids=people_touched([item]))
        run_apply(item)
        run.save(update_fields=RECORDED_FIELDS)
        traces_insert([(run, outcome.records)])
        if run.status == RunStatus.WAITING:
            resume_schedule(run)
    return run


def runs_resume_due(*, limit: int = 1000) -> int:
    """Resume waiting runs whose delay passed: their scheduled task was lost (a broker
    restart), or tasks run in-process and none was scheduled. Returns how many were queued."""
    # A scheduled resumption gets a minute to happen before this one steps in.
    grace = 0 if tasks.resume_run.app.conf.task_always_eager else 60
    cutoff = timezone.now() - timedelta(seconds=grace)
    ids = list(
        WorkflowRun.objects.filter(status=RunStatus.WAITING, resume_at__lte=cutoff)
        .order_by("resume_at")
        .values_list("id", flat=True)[:limit]
    )
    for run_id in ids:
        tasks.resume_run.delay(run_id)
    return len(ids)


def runs_purge(*, older_than_days: int | None = None) -> int:
    """Delete finished runs (and their traces) older than the retention. Returns how many."""
    days = settings.CDP_WORKFLOW_RUN_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    old = WorkflowRun.objects.filter(created_at__lt=cutoff).exclude(status=RunStatus.WAITING)
    deleted = 0
    while True:
        ids = list(old.values_list("id", flat=True)[:5000])
        if not ids:
            return deleted
        NodeTrace.objects.filter(run_id__in=ids).delete()
        deleted += (
            WorkflowRun.objects.filter(id__in=ids).delete()[1].get(WorkflowRun._meta.label, 0)
        )
