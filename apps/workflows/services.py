"""Writes on workflows: drafts, publishing and restoring versions, routing rules, dispatching
and executing runs, test runs, and purging old runs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache, partial
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max
from django.db.models.constants import OnConflict
from django.utils import timezone

from apps.events.models import Event
from apps.sources.models import EventSource
from apps.workflows.actions import ActionError
from apps.workflows.context import RunContext
from apps.workflows.engine import (
    Execution,
    NodeRecord,
    Outcome,
    effects_apply,
    json_safe,
    people_errors_message,
    people_only,
    people_steps,
)
from apps.workflows.graph import Graph, graph_compile, graph_validate
from apps.workflows.models import (
    NodeTrace,
    Rule,
    RunStatus,
    Workflow,
    WorkflowRun,
    WorkflowVersion,
    cap_json,
    cap_json_encoded,
)
from apps.workflows.rules import event_depth, rules_cache_clear, rules_invalidate, rules_table
from cdp.errors import DomainError

logger = logging.getLogger(__name__)

_UNSET: Any = object()


# --- workflows ----------------------------------------------------------------------------------


def workflow_create(
    *, name: str, description: str = "", graph: dict[str, Any] | None = None
) -> Workflow:
    """A new workflow whose draft is `graph` (validated; default: a lone start node)."""
    workflow = Workflow(name=name, description=description)
    if graph is not None:
        workflow.graph = graph_validate(graph)
    workflow.save()
    return workflow


def workflow_update_draft(
    *,
    workflow: Workflow,
    name: str | None = None,
    description: str | None = None,
    graph: dict[str, Any] | None = None,
) -> Workflow:
    """Edit the draft (runs keep using the published version until the next publish)."""
    fields = ["updated_at"]
    if name is not None:
        workflow.name = name
        fields.append("name")
    if description is not None:
        workflow.description = description
        fields.append("description")
    if graph is not None:
        workflow.graph = graph_validate(graph)
        fields.append("graph")
    workflow.save(update_fields=fields)
    return workflow


def workflow_delete(*, workflow: Workflow) -> None:
    with transaction.atomic():
        workflow.delete()
        rules_invalidate()


def workflow_publish(*, workflow: Workflow, user: Any = None) -> WorkflowVersion:
    """Publish the draft as a new version; runs started from now on use it. The previous
    versions are kept (see workflow_restore)."""
    graph = graph_validate(workflow.graph)
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
        last = workflow.versions.aggregate(n=Max("number"))["n"] or 0
        version = WorkflowVersion.objects.create(
            workflow=workflow,
            number=last + 1,
            graph=graph,
            published_at=timezone.now(),
            published_by=user if user is not None and user.is_authenticated else None,
        )
        workflow.published_version = version
        workflow.save(update_fields=["published_version", "updated_at"])
        rules_invalidate()
    return version


def workflow_restore(
    *, workflow: Workflow, version: WorkflowVersion, user: Any = None
) -> WorkflowVersion:
    """Make an earlier version the published one again, and the draft a copy of it."""
    if version.workflow_id != workflow.pk:
        raise DomainError(f"version {version.number} belongs to another workflow", field="version")
    with transaction.atomic():
        workflow.published_version = version
        workflow.graph = version.graph
        workflow.save(update_fields=["published_version", "graph", "updated_at"])
        rules_invalidate()
    return version


def workflow_unpublish(*, workflow: Workflow) -> Workflow:
    """Stop running the workflow (its rules match nothing until it is published again)."""
    with transaction.atomic():
        workflow.published_version = None
        workflow.save(update_fields=["published_version", "updated_at"])
        rules_invalidate()
    return workflow


# --- rules --------------------------------------------------------------------------------------


def _rule_condition(condition: Any) -> Any:
    from apps.segments.filtering import FilterError, parse_filter

    if condition in (None, {}):
        return None
    try:
        return parse_filter(condition, scope="event").tree
    except FilterError as exc:
        field = f"condition.{exc.leaf}" if exc.leaf else "condition"
        raise DomainError(exc.reason, field=field, code="invalid_filter") from exc


def rule_create(
    *,
    name: str,
    workflow: Workflow,
    event_name: str = "",
    source: EventSource | None = None,
    condition: dict[str, Any] | None = None,
    enabled: bool = True,
    priority: int = 0,
) -> Rule:
    with transaction.atomic():
        rule = Rule.objects.create(
            name=name,
            workflow=workflow,
            event_name=event_name,
            source=source,
            condition=_rule_condition(condition),
            enabled=enabled,
            priority=priority,
        )
        rules_invalidate()
    return rule


def rule_update(
    *,
    rule: Rule,
    name: str | None = None,
    workflow: Workflow | None = None,
    event_name: str | None = None,
    source: EventSource | None = _UNSET,
    condition: dict[str, Any] | None = _UNSET,
    enabled: bool | None = None,
    priority: int | None = None,
) -> Rule:
    """Change the given fields (source and condition accept None: any source, no condition)."""
    fields = ["updated_at"]
    for attr, value in (
        ("name", name),
        ("workflow", workflow),
        ("event_name", event_name),
        ("enabled", enabled),
        ("priority", priority),
    ):
        if value is not None:
            setattr(rule, attr, value)
            fields.append(attr)
    if source is not _UNSET:
        rule.source = source
        fields.append("source")
    if condition is not _UNSET:
        rule.condition = _rule_condition(condition)
        fields.append("condition")
    with transaction.atomic():
        rule.save(update_fields=fields)
        rules_invalidate()
    return rule


def rule_delete(*, rule: Rule) -> None:
    with transaction.atomic():
        rule.delete()
        rules_invalidate()


# --- dispatch (called by processing) --------------------------------------------------------------


def rules_dispatch(*, events: Sequence[Any], profiles: Mapping[str, Any] | None = None) -> int:
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
        event_id = getattr(event, "pk", None)
        # Events of ephemeral sources have no row: their runs carry the event itself.
        state = {} if event_id is not None else {"event": event.as_task_payload()}
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
    ids = _runs_insert(runs)
    if ids:
        transaction.on_commit(partial(_send_runs, ids))
    return len(ids)


def _runs_insert(runs: list[WorkflowRun]) -> list[int]:
    """Insert queued runs in one statement; a run of an (event, rule) that already has one
    (the unique constraint) is skipped. Returns the ids of the inserted runs, in order.

    bulk_create(ignore_conflicts=True) can't return the new ids, so this is the insert it
    makes (INSERT ... ON CONFLICT DO NOTHING / INSERT OR IGNORE) with RETURNING added."""
    if not runs:
        return []
    fields = [f for f in WorkflowRun._meta.concrete_fields if not f.primary_key]
    rows = WorkflowRun.objects._insert(  # type: ignore[attr-defined]
        runs, fields=fields, returning_fields=[WorkflowRun._meta.pk], on_conflict=OnConflict.IGNORE
    )
    # A single ignored row comes back as None.
    return sorted(row[0] for row in rows if row)


def _send_runs(run_ids: list[int]) -> bool:
    """Queue the runs. A broker failure is logged, not raised: the runs are committed, queued,
    and runs_redispatch_queued (beat) will queue them again."""
    from apps.workflows.tasks import run_rules

    size = settings.CDP_WORKFLOW_DISPATCH_CHUNK
    try:
        for start in range(0, len(run_ids), size):
            run_rules.delay(run_ids[start : start + size])
    except Exception as exc:  # kombu/redis raise many kinds; all mean "not queued"
        if run_rules.app.conf.task_always_eager:
            raise  # in-process: that was the run failing, not the broker
        logger.error(
            "Could not queue %d workflow runs (%s); they stay queued for the redispatcher",
            len(run_ids),
            exc,
        )
        return False
    return True


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
    if ids and _send_runs(ids):
        logger.info("Re-dispatched %d queued workflow runs", len(ids))
        return len(ids)
    return 0


_in_process = threading.local()


def _resume_due_after_commit() -> None:
    """Embedded default (tasks in-process: no broker, no beat): delays are resumed after
    processing commits, once due. Workers with a broker get a scheduled task instead."""
    from apps.workflows.tasks import resume_run

    if resume_run.app.conf.task_always_eager and not getattr(_in_process, "resuming", False):
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


# --- runs ---------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _version_graph(version_id: int) -> Graph:
    """Published versions never change: their compiled graphs are kept per process."""
    return graph_compile(WorkflowVersion.objects.only("graph").get(pk=version_id).graph)


def _session_view(event: Any) -> dict[str, Any]:
    session = getattr(event, "session", None) if getattr(event, "session_id", None) else None
    if session is None:
        return {}
    return {
        f.name: json_safe(getattr(session, f.attname))
        for f in session._meta.concrete_fields
        if f.name != "source"
    }


def _source_view(event: Any) -> dict[str, Any]:
    source = getattr(event, "source", None) if event.source_id else None
    if source is None:
        return {"id": str(event.source_id) if event.source_id else None}
    return {"id": str(source.pk), "name": source.name}


def _event_from_payload(data: dict[str, Any]) -> Event:
    """An unsaved Event for ephemeral events and test runs."""
    from apps.events.incoming import IncomingEvent

    if "received_at" in data:
        incoming = IncomingEvent.from_task_payload(data)
        data = {
            "source_id": incoming.source_id,
            "message_id": incoming.message_id,
            "event_name": incoming.event_name,
            "distinct_id": incoming.distinct_id,
            "timestamp": incoming.timestamp,
            "category": incoming.category,
            "properties": incoming.properties,
            "context": incoming.context,
        }
    timestamp = data.get("timestamp") or timezone.now()
    if isinstance(timestamp, str):
        timestamp = datetime.fromisoformat(timestamp)
    fields: dict[str, Any] = {
        "source_id": data.get("source_id"),
        "message_id": str(data.get("message_id") or "test"),
        "event_name": str(data.get("event_name") or ""),
        "distinct_id": str(data.get("distinct_id") or ""),
        "category": str(data.get("category") or "custom"),
        "timestamp": timestamp,
        "received_at": timezone.now(),
        "properties": data.get("properties") or {},
        "context": data.get("context") or {},
    }
    return Event(**fields)


def _run_context(
    *,
    workflow_id: int,
    event: Any,
    profile: Any,
    run_key: str,
    test: bool = False,
    variables: dict[str, Any] | None = None,
    depth: int | None = None,
) -> RunContext:
    return RunContext(
        workflow_id=workflow_id,
        distinct_id=event.distinct_id,
        event=event,
        profile=profile,
        session=_session_view(event),
        source=_source_view(event),
        depth=event_depth(event) if depth is None else depth,
        test=test,
        run_key=run_key,
        variables=dict(variables or {}),
    )


def _traces(run: WorkflowRun, records: list[NodeRecord]) -> list[NodeTrace]:
    return [
        NodeTrace(
            run=run,
            node_id=r.node_id,
            action=r.action,
            input=cap_json(r.input),
            port=r.port,
            output=cap_json(r.output),
            started_at=r.started_at,
            duration_ms=r.duration_ms,
            error=r.error[:4000],
            attempt=r.attempt,
        )
        for r in records
    ]


def _json_fragment(encoded: bytes | None) -> orjson.Fragment | None:
    return None if encoded is None else orjson.Fragment(encoded)


_PG_TRACES_INSERT = f"""
INSERT INTO {NodeTrace._meta.db_table}
    (run_id, node_id, action, input, port, output, started_at, duration_ms, error, attempt)
SELECT run_id, node_id, action, input, port, output, started_at, duration_ms, error, attempt
FROM jsonb_to_recordset(%s::jsonb) AS t(
    run_id bigint, node_id text, action text, input jsonb, port text, output jsonb,
    started_at timestamptz, duration_ms integer, error text, attempt smallint
)
"""  # noqa: S608 - the table name is a constant


def _traces_insert(runs: Sequence[tuple[WorkflowRun, list[NodeRecord]]]) -> None:
    """Insert the node traces of runs in one statement. On PostgreSQL the rows go as one JSON
    document (jsonb_to_recordset, each capped value embedded as encoded once by cap_json):
    bulk_create's arrays are escaped by the client element by element, which cost more than
    the insert itself; elsewhere bulk_create."""
    if connection.vendor != "postgresql":
        NodeTrace.objects.bulk_create(
            [trace for run, records in runs for trace in _traces(run, records)]
        )
        return
    rows = [
        {
            "run_id": run.pk,
            "node_id": r.node_id,
            "action": r.action,
            "input": _json_fragment(cap_json_encoded(r.input)),
            "port": r.port,
            "output": _json_fragment(cap_json_encoded(r.output)),
            "started_at": r.started_at,
            "duration_ms": r.duration_ms,
            "error": r.error[:4000],
            "attempt": r.attempt,
        }
        for run, records in runs
        for r in records
    ]
    if rows:
        with connection.cursor() as cursor:
            cursor.execute(_PG_TRACES_INSERT, [orjson.dumps(rows).decode()])


@dataclass(slots=True)
class _Done:
    """An executed run, waiting to be recorded with its changes."""

    run: WorkflowRun
    ctx: RunContext
    outcome: Outcome


# The fields of a claimed run that recording it sets.
_RECORDED_FIELDS = [
    "status",
    "error",
    "variables",
    "state",
    "resume_at",
    "finished_at",
    "duration_ms",
]


def _apply(done: _Done) -> None:
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


def _people_only(done: _Done) -> bool:
    """A run whose changes are people operations only: applied with others' in one go."""
    return (
        done.outcome.status != RunStatus.FAILED
        and bool(done.ctx.effects)
        and people_only(done.ctx.effects)
    )


def _apply_people(group: list[_Done]) -> None:
    """Apply the people operations of runs that change nothing else, together (one read,
    lock and write of their profiles: people_apply_many), each run all or nothing as
    effects_apply in a savepoint would, and set their final fields."""
    from apps.profiles.services import people_apply_many

    results = people_apply_many(
        changes=[(item.ctx.distinct_id, people_steps(item.ctx.effects)) for item in group]
    )
    for item, result in zip(group, results, strict=True):
        if result.errors:
            message = people_errors_message(result.errors)
            _finish(item, RunStatus.FAILED, f"applying the changes failed: {message}")
        else:
            _finish(item, item.outcome.status, item.outcome.error)


def _apply_all(done: list[_Done]) -> None:
    """Apply the runs' changes in order: consecutive runs that only change people's traits
    together (_apply_people), the others one by one (_apply)."""
    group: list[_Done] = []
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
        _apply(item)
    if group:
        _apply_people(group)


def _finish(done: _Done, status: str, error: str) -> None:
    """Set a run's final fields (saved by _runs_update or save)."""
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


def _people_touched(done: list[_Done]) -> set[str]:
    """The distinct ids (and merge identifiers) whose profiles the runs' changes write."""
    people: set[str] = set()
    for item in done:
        if item.outcome.status == RunStatus.FAILED or not item.ctx.effects:
            continue
        people.add(item.ctx.distinct_id)
        for effect in item.ctx.effects:
            if effect.kind == "merge_by":
                people.add(effect.data["identifier"])
    return people


def _record(done: list[_Done], dropped: Sequence[int] = ()) -> None:
    """Apply and record executed runs in one transaction (one commit for a batch of runs):
    each run's changes in its own savepoint, then the runs and their traces in bulk. Runs
    whose rule no longer applies (`dropped`) are deleted, as if they never matched."""
    from apps.profiles.locks import person_locks_hold

    if not done and not dropped:
        return
    with transaction.atomic():
        if done:
            held = _claims_held([item.run for item in done])
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
        person_locks_hold(distinct_ids=_people_touched(done))
        _apply_all(done)
        if done:
            _runs_update([item.run for item in done])
            _traces_insert([(item.run, item.outcome.records) for item in done])
        for item in done:
            if item.run.status == RunStatus.WAITING:
                _schedule_resume(item.run)
        if dropped:
            WorkflowRun.objects.filter(pk__in=dropped).delete()


def _claims_held(runs: Sequence[WorkflowRun]) -> set[int]:
    """The ids of the runs still running under the claim this worker took, locked until the
    transaction ends. A run whose lease expired was recovered (queued or waiting again, maybe
    claimed by another worker): recording this attempt too would apply its changes twice."""
    claims = {run.pk: run.claimed_at for run in runs}
    rows = (
        WorkflowRun.objects.select_for_update()
        .filter(pk__in=claims, status=RunStatus.RUNNING)
        .values_list("id", "claimed_at")
    )
    return {pk for pk, claimed_at in rows if claimed_at is not None and claimed_at == claims[pk]}


_PG_RUNS_UPDATE = f"""
UPDATE {WorkflowRun._meta.db_table} AS r
SET status = u.status, error = u.error, variables = u.variables, state = u.state,
    resume_at = u.resume_at, finished_at = u.finished_at, duration_ms = u.duration_ms,
    profile_id = u.profile_id
FROM jsonb_to_recordset(%s::jsonb) AS u(
    id bigint, status text, error text, variables jsonb, state jsonb,
    resume_at timestamptz, finished_at timestamptz, duration_ms integer, profile_id uuid
)
WHERE r.id = u.id
"""  # noqa: S608 - the table name is a constant


def _runs_update(runs: list[WorkflowRun]) -> None:
    """Save how the runs ended: on PostgreSQL one UPDATE from one JSON document
    (bulk_update's CASE per field and row, or arrays the client escapes element by element,
    cost more than the runs' own changes), elsewhere bulk_update."""
    if connection.vendor != "postgresql":
        WorkflowRun.objects.bulk_update(runs, [*_RECORDED_FIELDS, "profile_id"])
        return
    rows = [
        {
            "id": run.pk,
            "status": run.status,
            "error": run.error,
            "variables": run.variables,
            "state": run.state,
            "resume_at": run.resume_at,
            "finished_at": run.finished_at,
            "duration_ms": run.duration_ms,
            "profile_id": str(run.profile_id) if run.profile_id else None,
        }
        for run in runs
    ]
    with connection.cursor() as cursor:
        cursor.execute(_PG_RUNS_UPDATE, [orjson.dumps(rows, default=str).decode()])


def _schedule_resume(run: WorkflowRun) -> None:
    assert run.resume_at is not None
    transaction.on_commit(partial(_send_resume, run.pk, run.resume_at))


def _send_resume(run_id: int, due: datetime) -> None:
    from apps.workflows.tasks import resume_run

    if resume_run.app.conf.task_always_eager:
        # An in-process apply_async(eta=...) would run at once, skipping the wait: the run
        # stays waiting (resume_at) until runs_resume_due picks it up once it is due (after
        # processing commits in the embedded default, or the beat task).
        logger.info("Run %s waits until %s (tasks run in-process: not scheduled)", run_id, due)
        return
    try:
        resume_run.apply_async((run_id,), eta=due)
    except Exception as exc:  # the run stays waiting; runs_resume_due picks it up
        logger.error("Could not schedule the resumption of run %s: %s", run_id, exc)


def _profiles_for(distinct_ids: list[str]) -> dict[str, Any]:
    from apps.profiles.selectors import profiles_for_distinct_ids

    return profiles_for_distinct_ids(distinct_ids) if distinct_ids else {}


def _profile_for(distinct_id: str) -> Any:
    from apps.profiles.selectors import profile_get_for_distinct_id

    return profile_get_for_distinct_id(distinct_id) if distinct_id else None


_PG_RUNS_CLAIM = f"""
UPDATE {WorkflowRun._meta.db_table} SET status = %s, started_at = %s, claimed_at = %s
WHERE id IN (
    SELECT id FROM {WorkflowRun._meta.db_table}
    WHERE id = ANY(%s) AND status = %s AND NOT test
    FOR UPDATE SKIP LOCKED
)
RETURNING *
"""  # noqa: S608 - the table name is a constant


def _runs_claim(run_ids: Sequence[int]) -> list[WorkflowRun]:
    """Claim the runs still queued (queued -> running), in id order, and commit the claim.
    A run another worker claimed (or is claiming: row locked) or that already ended is left
    out, so a task delivered twice, or a redispatch racing the first delivery, runs it once.
    On PostgreSQL one UPDATE ... RETURNING; elsewhere a select and an update."""
    now = timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            runs = list(
                WorkflowRun.objects.raw(
                    _PG_RUNS_CLAIM,
                    [RunStatus.RUNNING, now, now, list(run_ids), RunStatus.QUEUED],
                )
            )
            return sorted(runs, key=lambda run: run.pk)
        query = WorkflowRun.objects.filter(pk__in=run_ids, status=RunStatus.QUEUED, test=False)
        if connection.features.has_select_for_update_skip_locked:
            query = query.select_for_update(skip_locked=True)
        runs = list(query.order_by("id"))
        if runs:
            WorkflowRun.objects.filter(
                pk__in=[run.pk for run in runs], status=RunStatus.QUEUED
            ).update(status=RunStatus.RUNNING, started_at=now, claimed_at=now)
            for run in runs:
                run.status, run.started_at, run.claimed_at = RunStatus.RUNNING, now, now
    return runs


def _run_event(run: WorkflowRun, events: Mapping[int, Event]) -> Event | None:
    if run.event_ref is not None:
        return events.get(run.event_ref)
    payload = run.state.get("event")
    return _event_from_payload(payload) if payload else None


def _execute(*, run: WorkflowRun, event: Event, profile: Any) -> _Done:
    """Execute a claimed run's workflow version for its event (nothing is written yet)."""
    assert run.version_id is not None
    run_key = (
        f"{run.event_ref}-{run.rule_id}"
        if run.event_ref is not None
        else f"e-{event.message_id}-{run.rule_id}"
    )
    ctx = _run_context(
        workflow_id=run.workflow_id, event=event, profile=profile, run_key=run_key, depth=run.depth
    )
    if profile is not None:
        run.profile_id = profile.pk
    outcome = Execution(_version_graph(run.version_id), ctx).from_start(ctx.event_view)
    return _Done(run, ctx, outcome)


def _gone(run: WorkflowRun, what: str) -> _Done:
    """A run that can't execute: recorded as failed."""
    ctx = _run_context(
        workflow_id=run.workflow_id,
        event=_event_from_payload({"distinct_id": run.distinct_id}),
        profile=None,
        run_key=f"run-{run.pk}",
        depth=run.depth,
    )
    return _Done(run, ctx, Outcome(RunStatus.FAILED, f"the run's {what} no longer exists"))


def runs_execute(*, run_ids: Sequence[int]) -> int:
    """Run queued runs (the run_rules task): claim them, evaluate each rule's condition (a
    false one deletes the run, as if the rule had not matched), execute the workflow
    versions, then apply and record the runs, in one transaction per batch, except that a
    person's second run waits for the first one's changes to commit (it must see them). Runs
    already claimed or ended are skipped. Returns how many runs were executed."""
    runs = _runs_claim(run_ids)
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
    from apps.segments.filtering import evaluate

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
    people = _profiles_for(sorted({run.distinct_id for run in runs if run.distinct_id}))
    done: list[_Done] = []
    dropped: list[int] = []
    seen: set[str] = set()
    count = 0
    for run in runs:
        rule = table.by_id.get(run.rule_id) if run.rule_id is not None else None
        if rule is None:
            dropped.append(run.pk)  # the rule was disabled or deleted since the event matched
            continue
        event = _run_event(run, events)
        if event is None or run.version_id is None:
            done.append(_gone(run, "event" if event is None else "workflow version"))
            continue
        if event.distinct_id in seen:
            # This person's earlier run must be committed, and its changes read back.
            _record(done, dropped)
            count += len(done)
            done, dropped, seen = [], [], set()
            people[event.distinct_id] = _profile_for(event.distinct_id)
        profile = people.get(event.distinct_id)
        if rule.condition is not None and not evaluate(
            rule.condition, profile=profile, event=event
        ):
            dropped.append(run.pk)
            continue
        done.append(_execute(run=run, event=event, profile=profile))
        seen.add(event.distinct_id)
    _record(done, dropped)
    return count + len(done)


def run_resume(*, run_id: int) -> WorkflowRun | None:
    """Continue a waiting run from its delays that are due (the resume_run task). Runs not
    waiting (already resumed, or claimed by another worker) are left alone."""
    from apps.profiles.locks import person_locks_hold

    now = timezone.now()
    run = WorkflowRun.objects.filter(pk=run_id, status=RunStatus.WAITING).first()
    if run is None:
        return None
    pending = run.state.get("pending", [])
    due = [p for p in pending if datetime.fromisoformat(p["due"]) <= now]
    later = [p for p in pending if p not in due]
    if not due:
        _send_resume(run.pk, min(datetime.fromisoformat(p["due"]) for p in later))
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
        else _run_event(run, {})
    )
    if event is None or run.version_id is None:
        with transaction.atomic():
            run.status = RunStatus.FAILED
            run.error = "the run's event or workflow version no longer exists"
            run.finished_at = now
            run.state, run.resume_at = {}, None
            run.save(update_fields=["status", "error", "state", "resume_at", "finished_at"])
        return run
    profile = _profile_for(event.distinct_id)
    ctx = _run_context(
        workflow_id=run.workflow_id,
        event=event,
        profile=profile,
        run_key=f"{run.state.get('run_key', run.pk)}-r{resumes}",
        variables=run.variables,
        depth=run.depth,
    )
    outcome = Execution(_version_graph(run.version_id), ctx).from_ports(
        [(p["node"], p["port"], p["payload"]) for p in due]
    )
    if outcome.status != RunStatus.FAILED:
        outcome.pending = later + outcome.pending
        if outcome.pending:
            outcome.status = RunStatus.WAITING
    item = _Done(run, ctx, outcome)
    with transaction.atomic():
        if not _claims_held([run]):
            logger.warning(
                "Workflow run %s outlived its lease (CDP_WORKFLOW_RUN_LEASE_SECONDS) and was "
                "given back: this attempt's results are dropped",
                run.pk,
            )
            return None
        person_locks_hold(distinct_ids=_people_touched([item]))
        _apply(item)
        run.save(update_fields=_RECORDED_FIELDS)
        _traces_insert([(run, outcome.records)])
        if run.status == RunStatus.WAITING:
            _schedule_resume(run)
    return run


def runs_resume_due(*, limit: int = 1000) -> int:
    """Resume waiting runs whose delay passed: their scheduled task was lost (a broker
    restart), or tasks run in-process and none was scheduled. Returns how many were queued."""
    from apps.workflows.tasks import resume_run

    # A scheduled resumption gets a minute to happen before this one steps in.
    grace = 0 if resume_run.app.conf.task_always_eager else 60
    cutoff = timezone.now() - timedelta(seconds=grace)
    ids = list(
        WorkflowRun.objects.filter(status=RunStatus.WAITING, resume_at__lte=cutoff)
        .order_by("resume_at")
        .values_list("id", flat=True)[:limit]
    )
    for run_id in ids:
        resume_run.delay(run_id)
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


# --- test runs ----------------------------------------------------------------------------------


def workflow_test_run(
    *,
    workflow: Workflow,
    event_payload: dict[str, Any] | None = None,
    event: Event | None = None,
    profile: Any = None,
    use_draft: bool = True,
) -> dict[str, Any]:
    """Run the draft (or the published version) for an event, synchronously, inside a
    transaction that is rolled back: nothing it changes is kept. HTTP requests are recorded
    and not sent, unless the node has a `test_url` (then they go there). Delays are skipped.
    Returns the run's status, error, variables, staged changes, requests, the profile's
    traits as the run would leave them, and the full trace."""
    if use_draft:
        graph = graph_compile(graph_validate(workflow.graph))
    elif workflow.published_version_id is None:
        raise DomainError("the workflow has no published version", code="not_published")
    else:
        graph = _version_graph(workflow.published_version_id)
    if event is None:
        payload = dict(event_payload or {})
        if not payload.get("distinct_id") and profile is not None:
            from apps.profiles.selectors import profile_distinct_ids

            ids = profile_distinct_ids(profile)
            payload["distinct_id"] = ids[0] if ids else f"test-{profile.pk}"
        if not payload.get("event_name"):
            raise DomainError("the test event needs an event_name", field="event.event_name")
        if not payload.get("distinct_id"):
            raise DomainError("the test event needs a distinct_id", field="event.distinct_id")
        event = _event_from_payload(payload)
    begin = timezone.now()
    with transaction.atomic():
        if profile is None:
            profile = _profile_for(event.distinct_id)
        ctx = _run_context(
            workflow_id=workflow.pk,
            event=event,
            profile=profile,
            run_key=f"test-{workflow.pk}",
            test=True,
        )
        outcome = Execution(graph, ctx).from_start(ctx.event_view)
        status, error = outcome.status, outcome.error
        profile_after = None
        if status != RunStatus.FAILED:
            try:
                with transaction.atomic():
                    effects_apply(ctx, ctx.effects)
            except Exception as exc:  # reported to the tester, like a real run's failure
                status, error = RunStatus.FAILED, f"applying the changes failed: {exc}"
            else:
                after = _profile_for(event.distinct_id)
                if after is not None:
                    profile_after = {
                        "id": str(after.pk),
                        "traits": after.traits,
                        "private_traits": after.private_traits,
                    }
        transaction.set_rollback(True)
    duration = timezone.now() - begin
    return {
        "status": status,
        "error": error,
        "duration_ms": round(duration.total_seconds() * 1000),
        "variables": json_safe(ctx.variables),
        "changes": json_safe([e.as_dict() for e in ctx.effects])
        if status != RunStatus.FAILED
        else [],
        "requests": json_safe(ctx.requests),
        "profile_after": json_safe(profile_after),
        "trace": [record.as_dict() for record in outcome.records],
    }
