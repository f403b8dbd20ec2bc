"""Recording queued runs for matched events (the runs outbox), queueing them, and giving back
runs left queued or lost with their worker."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.events.incoming import IncomingEvent
from apps.events.models import Event
from apps.profiles.models import Profile
from apps.workflows import tasks
from apps.workflows.matching import event_depth, rules_table
from apps.workflows.models import RunStatus, WorkflowRun
from apps.workflows.services.runs import runs_resume_due
from apps.workflows.services.storage import runs_insert
from cdp.tasks import enqueue

logger = logging.getLogger(__name__)


def rules_dispatch(
    *, events: Sequence[Event | IncomingEvent], profiles: Mapping[str, Profile] | None = None
) -> int:
    """Match processed events to rules (by event name and source) and record one queued run
    per match, in the caller's transaction (processing's): the runs table is the outbox of
    workflow runs, as the events table is of processing. The runs are queued (run_rules) once
    that transaction commits; runs a broker outage left queued are queued again by
    runs_redispatch_queued (celery beat). Events emitted CDP_WORKFLOW_MAX_DEPTH workflows deep
    start nothing. `profiles` (distinct_id -> Profile) fills in the runs' profile.
    Returns how many runs were recorded."""
    _resume_due_after_commit()
    table = rules_table()
    if table.empty:
        return 0
    max_depth = settings.CDP_WORKFLOW_MAX_DEPTH
    runs: list[WorkflowRun] = []
    for event in events:
        rules = table.match(event)
        if not rules:
            continue
        depth = event_depth(event)
        if depth >= max_depth:
            logger.warning(
                "Event %s (%s) is %d workflows deep: no rules run for it",
                getattr(event, "pk", None) or event.message_id,
                event.event_name,
                depth,
            )
            continue
        # Events of ephemeral sources have no row: their runs carry the event itself.
        if isinstance(event, IncomingEvent):
            event_id, state = None, {"event": event.as_task_payload()}
        else:
            event_id, state = event.pk, {}
        profile = profiles.get(event.distinct_id) if profiles else None
        for rule in rules:
            runs.append(
                WorkflowRun(
                    workflow_id=rule.workflow_id,
                    version_id=rule.version_id,
                    rule_id=rule.id,
                    event_id=event_id,
                    event_ref=event_id,
                    distinct_id=event.distinct_id[:200],
                    profile_id=profile.pk if profile is not None else None,
                    status=RunStatus.QUEUED,
                    depth=depth,
                    state=state,
                )
            )
    ids = runs_insert(runs)
    if ids:
        transaction.on_commit(partial(runs_send, ids))
    return len(ids)


RUN_RULES_TASK = "apps.workflows.tasks.run_rules"


def runs_send(run_ids: list[int]) -> bool:
    """Queue the runs, CDP_WORKFLOW_DISPATCH_CHUNK per task. A broker failure is logged, not
    raised: the runs are committed, queued, and runs_redispatch_queued (beat) will queue them
    again. In-process, a failure is the run failing and is raised."""
    return enqueue(
        RUN_RULES_TASK,
        [run_ids],
        description=f"{len(run_ids)} workflow runs; they stay queued for the redispatcher",
        chunk=settings.CDP_WORKFLOW_DISPATCH_CHUNK,
        log_level=logging.ERROR,
        eager_reraise=True,
    )


# A run whose worker was lost this many times is failed instead of being given back again.
MAX_RUN_RECOVERIES = 3


def runs_recover_lost(*, limit: int = 1000) -> list[int]:
    """Give back runs whose worker was lost (killed, out of memory, host gone): runs still
    running CDP_WORKFLOW_RUN_LEASE_SECONDS after their claim. A running run has applied
    nothing (its changes apply in the transaction that records how it ended), so it can run
    again: a run claimed from the queue goes back to queued, a resumed one back to waiting
    (its state is the one saved at its last delay, whose changes were applied then;
    runs_resume_due resumes it from there). Each recovery counts in `recoveries`; a run lost
    again after MAX_RUN_RECOVERIES is failed. Returns the ids of the runs queued again."""
    lease = settings.CDP_WORKFLOW_RUN_LEASE_SECONDS
    now = timezone.now()
    lost = list(
        WorkflowRun.objects.filter(
            status=RunStatus.RUNNING,
            claimed_at__lt=now - timedelta(seconds=lease),
            test=False,
        )
        .order_by("claimed_at")
        .values_list("id", "claimed_at", "recoveries", "resume_at")[:limit]
    )
    queued: list[int] = []
    for run_id, claimed_at, recoveries, resume_at in lost:
        # Compare-and-set on the claim: a run that ended, or was claimed again, meanwhile is
        # left alone, and two recoveries racing count once.
        same = WorkflowRun.objects.filter(
            pk=run_id, status=RunStatus.RUNNING, claimed_at=claimed_at
        )
        if recoveries >= MAX_RUN_RECOVERIES:
            if same.update(
                status=RunStatus.FAILED,
                error=(
                    f"its worker was lost {recoveries + 1} times (still running "
                    f"{lease}s after being claimed): given up"
                ),
                state={},
                resume_at=None,
                finished_at=now,
            ):
                logger.error("Workflow run %s failed: its worker was lost too often", run_id)
            continue
        if resume_at is None:  # claimed from the queue: runs again from the start
            changed = same.update(
                status=RunStatus.QUEUED,
                started_at=None,
                claimed_at=None,
                recoveries=F("recoveries") + 1,
            )
            if changed:
                queued.append(run_id)
        else:  # resumed from a delay: resumes again from the state saved at the delay
            changed = same.update(
                status=RunStatus.WAITING, claimed_at=None, recoveries=F("recoveries") + 1
            )
        if changed:
            logger.warning(
                "Workflow run %s was still running %ss after its claim: its worker was lost, "
                "given back (recovery %d)",
                run_id,
                lease,
                recoveries + 1,
            )
    return queued


def runs_redispatch_queued(*, older_than: timedelta | None = None, limit: int = 100_000) -> int:
    """Queue again runs left queued (broker down when processing committed, a task lost with
    a restarted broker), after CDP_REDISPATCH_AFTER_SECONDS like the events' redispatch, and
    the runs whose worker was lost (runs_recover_lost). A run already claimed by a worker
    (within its lease) is not run again. Returns how many were queued."""
    if older_than is None:
        older_than = timedelta(seconds=settings.CDP_REDISPATCH_AFTER_SECONDS)
    recovered = runs_recover_lost()
    cutoff = timezone.now() - older_than
    ids = list(
        WorkflowRun.objects.filter(status=RunStatus.QUEUED, created_at__lte=cutoff)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    ids = sorted({*ids, *recovered})
    if ids and runs_send(ids):
        logger.info("Re-dispatched %d queued workflow runs", len(ids))
        return len(ids)
    return 0


_in_process = threading.local()


def _resume_due_after_commit() -> None:
    """Embedded default (tasks in-process: no broker, no beat): delays are resumed after
    processing commits, once due. Workers with a broker get a scheduled task instead."""
    if tasks.resume_run.app.conf.task_always_eager and not getattr(_in_process, "resuming", False):
        transaction.on_commit(_resume_due_in_process)


def _resume_due_in_process() -> None:
    # A resumed run's emitted events are processed in this thread: no nested pass.
    if getattr(_in_process, "resuming", False):
        return
    _in_process.resuming = True
    try:
        runs_resume_due()
    except Exception:  # processing committed; the runs stay waiting for the next pass
        logger.exception("Could not resume the workflow runs that are due")
    finally:
        _in_process.resuming = False
