"""Workflows (drafts, publishing, restoring versions) and the routing rules that start them."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.segments.filtering import FilterError, parse_filter
from apps.sources.models import EventSource
from apps.workflows.graph import graph_validate
from apps.workflows.matching import rules_invalidate
from apps.workflows.models import Rule, Workflow, WorkflowVersion
from cdp.errors import DomainError

# "Not given" for the arguments where None means something (no source, no condition).
_UNSET: Any = object()


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


def workflow_publish(
    *, workflow: Workflow, user: User | AnonymousUser | None = None
) -> WorkflowVersion:
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
    *,
    workflow: Workflow,
    version: WorkflowVersion,
    user: User | AnonymousUser | None = None,
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


def _rule_condition(condition: dict[str, Any] | None) -> dict[str, Any] | None:
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
