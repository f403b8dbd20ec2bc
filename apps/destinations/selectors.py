"""Reads on destinations: lists, a destination's deliveries and its success rate over time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone

from apps.destinations.models import Delivery, DeliveryAttempt, Destination, Resource


def resource_list() -> QuerySet[Resource]:
    return Resource.objects.all()


def destination_list() -> QuerySet[Destination]:
    return Destination.objects.select_related("resource")


def destination_deliveries(destination: Destination) -> QuerySet[Delivery]:
    return Delivery.objects.filter(destination=destination)


def destination_success_series(
    destination: Destination, *, hours: int = 48
) -> list[dict[str, Any]]:
    """Attempts per hour over the last `hours`, with how many succeeded and the rate (%)."""
    since = timezone.now() - timedelta(hours=hours)
    rows = (
        DeliveryAttempt.objects.filter(destination=destination, at__gte=since)
        .annotate(hour=TruncHour("at"))
        .values("hour")
        .annotate(total=Count("id"), ok=Count("id", filter=Q(ok=True)))
        .order_by("hour")
    )
    return [
        {
            "hour": row["hour"].isoformat(),
            "attempts": row["total"],
            "succeeded": row["ok"],
            "rate": round(100.0 * row["ok"] / row["total"], 1) if row["total"] else None,
        }
        for row in rows
    ]
