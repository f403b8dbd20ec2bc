"""Test runs as a given person: the draft runs for an event as the profile of a distinct id,
optionally with made-up traits, and everything is rolled back."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction

from apps.profiles import selectors as profile_selectors
from apps.profiles import services as profile_services
from apps.workflows import services
from apps.workflows.models import Workflow


def workflow_test_as(
    *,
    workflow: Workflow,
    event: dict[str, Any],
    distinct_id: str | None = None,
    traits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the draft for `event` as the profile of `distinct_id` (the event's own when not
    given; a new person when unknown), with `traits` set on that profile for this test only.
    Returns the test run's result with its full trace (see services.workflow_test_run)."""
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
        result = services.workflow_test_run(workflow=workflow, event_payload=event, profile=profile)
        # The test profile (made for the traits) goes with the test's other changes.
        transaction.set_rollback(True)
    return result
