"""Helpers of the destination tests (resources and destinations made through the services)."""

from __future__ import annotations

from typing import Any

from django.test import TestCase

from apps.destinations import services
from apps.destinations.models import Delivery, Destination, Resource


def webhook_resource(
    url: str,
    *,
    name: str = "hook",
    secret: str | None = None,
    internal: bool = True,
    **credentials: Any,
) -> Resource:
    creds: dict[str, Any] = {"url": url, **credentials}
    if secret:
        creds["signing_secrets"] = [{"secret": secret, "expires_at": None}]
    return services.resource_create(name=name, kind="webhook", credentials=creds, internal=internal)


def destination_make(
    resource: Resource,
    *,
    name: str = "dest",
    kind: str = "webhook",
    trigger: str = "event",
    **fields: Any,
) -> Destination:
    return services.destination_create(
        name=name, kind=kind, resource=resource, trigger=trigger, **fields
    )


def deliver_all(destination: Destination) -> int:
    """Run the destination's worker now (after the commits of what queued its deliveries)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return services.destination_deliver(destination_id=destination.pk)


def statuses(destination: Destination) -> dict[str, str]:
    return dict(Delivery.objects.filter(destination=destination).values_list("key", "status"))
