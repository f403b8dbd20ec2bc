"""The runs' and traces' rows in bulk: inserting queued runs, claiming them, checking claims,
saving how they ended and their node traces (one raw statement each on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from django.db import connection, transaction
from django.db.models.constants import OnConflict
from django.utils import timezone

from apps.workflows.engine import NodeRecord
from apps.workflows.models import NodeTrace, RunStatus, WorkflowRun, cap_json, cap_json_encoded


def runs_insert(runs: list[WorkflowRun]) -> list[int]:
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


_PG_RUNS_CLAIM = f"""
UPDATE {WorkflowRun._meta.db_table} SET status = %s, started_at = %s, claimed_at = %s
WHERE id IN (
    SELECT id FROM {WorkflowRun._meta.db_table}
    WHERE id = ANY(%s) AND status = %s AND NOT test
    FOR UPDATE SKIP LOCKED
)
RETURNING *
"""  # noqa: S608 - the table name is a constant


def runs_claim(run_ids: Sequence[int]) -> list[WorkflowRun]:
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


def claims_held(runs: Sequence[WorkflowRun]) -> set[int]:
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


# The fields of a claimed run that recording it sets.
RECORDED_FIELDS = [
    "status",
    "error",
    "variables",
    "state",
    "resume_at",
    "finished_at",
    "duration_ms",
]


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


def runs_update(runs: list[WorkflowRun]) -> None:
    """Save how the runs ended: on PostgreSQL one UPDATE from one JSON document
    (bulk_update's CASE per field and row, or arrays the client escapes element by element,
    cost more than the runs' own changes), elsewhere bulk_update."""
    if connection.vendor != "postgresql":
        WorkflowRun.objects.bulk_update(runs, [*RECORDED_FIELDS, "profile_id"])
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


def traces_insert(runs: Sequence[tuple[WorkflowRun, list[NodeRecord]]]) -> None:
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
