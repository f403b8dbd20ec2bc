"""Reads on workflows: workflows, versions, rules, runs with their traces, the action registry."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from apps.workflows.actions import action_classes
from apps.workflows.models import NodeTrace, Rule, Workflow, WorkflowRun, WorkflowVersion


def workflow_list() -> QuerySet[Workflow]:
    return Workflow.objects.select_related("published_version")


def workflow_versions(workflow: Workflow) -> QuerySet[WorkflowVersion]:
    return workflow.versions.select_related("published_by").order_by("-number")


def rule_list() -> QuerySet[Rule]:
    return Rule.objects.select_related("workflow", "source")


def run_list(
    *, workflow: Workflow | None = None, event_id: int | None = None
) -> QuerySet[WorkflowRun]:
    """Runs, newest first: of a workflow, of an event, or all."""
    runs = WorkflowRun.objects.select_related("workflow", "version", "rule")
    if workflow is not None:
        runs = runs.filter(workflow=workflow)
    if event_id is not None:
        runs = runs.filter(event_ref=event_id)
    return runs.order_by("-created_at", "-id")


def run_with_traces() -> QuerySet[WorkflowRun]:
    return WorkflowRun.objects.select_related("workflow", "version", "rule").prefetch_related(
        Prefetch("traces", NodeTrace.objects.order_by("started_at", "id"))
    )


def action_list() -> list[dict[str, Any]]:
    """The registry: each action's name, description, ports and config schema."""
    return [cls.describe() for _, cls in sorted(action_classes().items())]
