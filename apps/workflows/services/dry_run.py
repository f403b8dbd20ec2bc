"""Test runs: a workflow run synchronously for an event, in a transaction rolled back."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.events.models import Event
from apps.profiles import selectors as profile_selectors
from apps.profiles import services as profile_services
from apps.profiles.models import Profile
from apps.workflows.effects import effects_apply
from apps.workflows.engine import Execution, json_safe
from apps.workflows.graph import graph_compile, graph_validate
from apps.workflows.models import RunStatus, Workflow
from apps.workflows.services.inputs import (
    event_from_payload,
    profile_for,
    run_context,
    version_graph,
)
from cdp.errors import DomainError


def workflow_test_run(
    *,
    workflow: Workflow,
    event_payload: dict[str, Any] | None = None,
    event: Event | None = None,
    profile: Profile | None = None,
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
        graph = version_graph(workflow.published_version_id)
    if event is None:
        payload = dict(event_payload or {})
        if not payload.get("distinct_id") and profile is not None:
            ids = profile_selectors.profile_distinct_ids(profile)
            payload["distinct_id"] = ids[0] if ids else f"test-{profile.pk}"
        if not payload.get("event_name"):
            raise DomainError("the test event needs an event_name", field="event.event_name")
        if not payload.get("distinct_id"):
            raise DomainError("the test event needs a distinct_id", field="event.distinct_id")
        event = event_from_payload(payload)
    begin = timezone.now()
    with transaction.atomic():
        if profile is None:
            profile = profile_for(event.distinct_id)
        ctx = run_context(
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
                after = profile_for(event.distinct_id)
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


def workflow_test_as(
    *,
    workflow: Workflow,
    event: dict[str, Any],
    distinct_id: str | None = None,
    traits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the draft for `event` as the profile of `distinct_id` (the event's own when not
    given; a new person when unknown), with `traits` set on that profile for this test only.
    Returns the test run's result with its full trace (see workflow_test_run)."""
    event = dict(event)
    if distinct_id:
        event["distinct_id"] = distinct_id
    with transaction.atomic():
        profile = None
        if traits:
            if not event.get("distinct_id"):
                event["distinct_id"] = f"test-{uuid.uuid4().hex[:12]}"
            profile = profile_services.people_apply(
                distinct_id=str(event["distinct_id"]),
                ops={"set": traits},
                reevaluate_segments=False,
            ).profile
        elif event.get("distinct_id"):
            profile = profile_selectors.profile_get_for_distinct_id(str(event["distinct_id"]))
        result = workflow_test_run(workflow=workflow, event_payload=event, profile=profile)
        # The test profile (made for the traits) goes with the test's other changes.
        transaction.set_rollback(True)
    return result
