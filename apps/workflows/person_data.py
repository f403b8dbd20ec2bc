"""A person's workflow runs and their node traces, for privacy requests (registered in
WorkflowsConfig.ready)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.db.models import Q, QuerySet

from apps.consents.privacy.hooks import Person, PersonDataHandler, delete_in_batches
from apps.workflows.models import NodeTrace, WorkflowRun

RUNS = "workflow_runs"
TRACES = "workflow_traces"
BATCH = 1000


def _runs(person: Person) -> QuerySet[WorkflowRun]:
    return WorkflowRun.objects.filter(
        Q(distinct_id__in=person.distinct_ids) | Q(profile_id__in=person.profile_ids)
    )


def _run_rows(person: Person) -> Iterator[dict[str, Any]]:
    for run in _runs(person).select_related("workflow").order_by("created_at", "pk"):
        yield {
            "id": run.pk,
            "workflow": run.workflow.name,
            "event_id": run.event_ref,
            "distinct_id": run.distinct_id,
            "profile_id": run.profile_id,
            "status": run.status,
            "variables": run.variables,
            "created_at": run.created_at,
            "finished_at": run.finished_at,
            "error": run.error,
        }


def _trace_rows(person: Person) -> Iterator[dict[str, Any]]:
    traces = NodeTrace.objects.filter(run__in=_runs(person)).order_by("run_id", "started_at", "pk")
    for t in traces:
        yield {
            "run_id": t.run_id,
            "node_id": t.node_id,
            "action": t.action,
            "input": t.input,
            "port": t.port,
            "output": t.output,
            "started_at": t.started_at,
            "error": t.error,
        }


def workflows_person_export(*, person: Person) -> dict[str, Iterable[dict[str, Any]]]:
    return {RUNS: _run_rows(person), TRACES: _trace_rows(person)}


def workflows_person_erase(
    *, person: Person, progress: Callable[[str, int], None]
) -> dict[str, int]:
    """Delete the person's runs (waiting ones stop) with their traces, in batches."""
    done = {RUNS: 0, TRACES: 0}
    # Smaller batches: each run takes its traces with it.
    for per_model in delete_in_batches(_runs(person), batch_size=BATCH):
        for table, model in ((RUNS, WorkflowRun), (TRACES, NodeTrace)):
            n = per_model.get(model._meta.label, 0)
            done[table] += n
            progress(table, n)
    return done


def workflows_person_count(*, person: Person) -> dict[str, int]:
    return {
        RUNS: _runs(person).count(),
        TRACES: NodeTrace.objects.filter(run__in=_runs(person)).count(),
    }


HANDLER = PersonDataHandler(
    app_label="workflows",
    export=workflows_person_export,
    erase=workflows_person_erase,
    count=workflows_person_count,
)
