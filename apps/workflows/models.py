"""Workflows (a draft graph and its published versions), routing rules, runs and node traces."""

from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.events.models import Event
from apps.sources.models import EventSource

# What a stored JSON value larger than the cap is replaced with (see cap_json).
TRUNCATED_MARKER = "__truncated__"


def cap_json(value: Any, limit: int | None = None) -> Any:
    """Keep stored traces bounded: a value whose JSON exceeds `limit` bytes is replaced by a
    marker object holding its size and the start of its JSON text."""
    encoded = cap_json_encoded(value, limit)
    return None if encoded is None else orjson.loads(encoded)


def cap_json_encoded(value: Any, limit: int | None = None) -> bytes | None:
    """cap_json's result as JSON text (None for None)."""
    if limit is None:
        limit = settings.CDP_WORKFLOW_TRACE_MAX_BYTES
    if value is None:
        return None
    encoded = orjson.dumps(value, default=str)
    if len(encoded) <= limit:
        return encoded
    return orjson.dumps(
        {
            TRUNCATED_MARKER: True,
            "bytes": len(encoded),
            "preview": encoded[: max(limit - 200, 0)].decode("utf-8", "ignore"),
        }
    )


def empty_graph() -> dict[str, Any]:
    return {"nodes": [{"id": "start", "action": "start", "config": {}}], "edges": []}


class Workflow(models.Model):
    """A graph of actions. Edits change the draft; runs use the published version."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    graph = models.JSONField(default=empty_graph)  # the draft
    published_version = models.ForeignKey(
        "WorkflowVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("publish_workflow", "Can publish a workflow (and restore a version)"),
            ("run_workflow_test", "Can run a workflow in test mode"),
        ]

    def __str__(self) -> str:
        return self.name


class WorkflowVersion(models.Model):
    """A published, immutable snapshot of a workflow's graph; older ones can be restored."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    graph = models.JSONField()
    published_at = models.DateTimeField()
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["workflow", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "number"], name="workflows_version_number_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.workflow} v{self.number}"


class Rule(models.Model):
    """Routes processed events to a workflow: by event name, source and an optional condition
    (a filter-language tree, evaluated on the event and its profile)."""

    name = models.CharField(max_length=200)
    event_name = models.CharField(max_length=255, blank=True, help_text="Blank: any event")
    source = models.ForeignKey(
        EventSource,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="workflow_rules",
        help_text="Empty: any source",
    )
    condition = models.JSONField(null=True, blank=True)
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="rules")
    enabled = models.BooleanField(default=True)
    # Higher runs first when several rules match one event.
    priority = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "id"]
        indexes = [models.Index(fields=["enabled", "event_name"], name="workflows_rule_match_idx")]

    def __str__(self) -> str:
        return self.name


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"  # paused at a delay node, resumed by a scheduled task
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WorkflowRun(models.Model):
    """One execution of a workflow version for one event (or a test run of the draft).

    Processing inserts the run, queued, in its own transaction (the runs table is the outbox
    of workflow runs); a worker claims it (queued -> running) and records how it ended. Runs
    of ephemeral sources have no event row: `state["event"]` holds the event's payload until
    the run ends."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(
        WorkflowVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    rule = models.ForeignKey(
        Rule, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    # The event row may be purged before the run; its id and person are kept for the record.
    event = models.ForeignKey(
        Event,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="workflow_runs",
        db_constraint=False,
    )
    event_ref = models.BigIntegerField(null=True, blank=True)
    distinct_id = models.CharField(max_length=200, blank=True)
    profile_id = models.UUIDField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    depth = models.PositiveSmallIntegerField(default=0)
    test = models.BooleanField(default=False)
    # Workflow variables and, while waiting, the state needed to resume (see engine.py).
    variables = models.JSONField(default=dict, blank=True)
    state = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # The lease: when a worker last claimed the run (queued -> running, or waiting -> running
    # to resume it). A run still running CDP_WORKFLOW_RUN_LEASE_SECONDS after its claim lost
    # its worker and is given back (services.runs_recover_lost), `recoveries` counting it.
    claimed_at = models.DateTimeField(null=True, blank=True)
    recoveries = models.PositiveSmallIntegerField(default=0)
    # While waiting: when the earliest pending delay is due (what runs_resume_due looks up).
    resume_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["workflow", "-created_at"], name="workflows_run_workflow_idx"),
            models.Index(fields=["event"], name="workflows_run_event_idx"),
            # The runs of an event (API ?event=, the event's admin link), kept when the event
            # row is gone (ephemeral sources, retention).
            models.Index(fields=["event_ref"], name="workflows_run_event_ref_idx"),
            models.Index(fields=["created_at"], name="workflows_run_created_idx"),
            # Small partial indexes for the periodic tasks: runs left queued (the outbox of
            # runs, see services.runs_redispatch_queued), running runs by claim time (their
            # lease, see services.runs_recover_lost) and waiting runs by due time.
            models.Index(
                fields=["created_at"],
                condition=Q(status="queued"),
                name="workflows_run_queued_idx",
            ),
            models.Index(
                fields=["claimed_at"],
                condition=Q(status="running"),
                name="workflows_run_running_idx",
            ),
            models.Index(
                fields=["resume_at"],
                condition=Q(status="waiting"),
                name="workflows_run_resume_idx",
            ),
        ]
        constraints = [
            # A redelivered run task (worker lost after the commit) can't run a rule twice.
            models.UniqueConstraint(
                fields=["event_ref", "rule"],
                condition=Q(test=False, event_ref__isnull=False, rule__isnull=False),
                name="workflows_run_event_rule_uniq",
            )
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.workflow_id} ({self.status})"


class NodeTrace(models.Model):
    """What one node did in a run: its input, the port it fired, its output, time and error.
    JSON values are capped (cap_json) so traces stay bounded."""

    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="traces")
    node_id = models.CharField(max_length=100)
    action = models.CharField(max_length=100)
    input = models.JSONField(null=True, blank=True)
    port = models.CharField(max_length=100, blank=True)
    output = models.JSONField(null=True, blank=True)
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    attempt = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["run", "started_at", "id"]

    def __str__(self) -> str:
        return f"{self.node_id} ({self.action}) -> {self.port or '-'}"
