"""Sending the outbox: claim due deliveries (`FOR UPDATE SKIP LOCKED` on PostgreSQL), send a
batch outside any transaction, record each outcome; retries with backoff and jitter on the
Standard Webhooks schedule, Retry-After honoured, 410 disables the destination, a circuit
breaker stops hammering a target that keeps failing; dead letters are replayed on request."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from apps.destinations.models import (
    UNFINISHED,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Destination,
    Trigger,
)
from apps.destinations.services.outbox import deliveries_wake
from apps.destinations.types import DeliveryResult, Outgoing, SendContext, destination_type
from cdp.errors import DomainError

logger = logging.getLogger(__name__)


def retry_schedule() -> list[float]:
    """Seconds to wait before each retry; its length is the number of retries."""
    return [float(s) for s in settings.CDP_DESTINATION_RETRY_SCHEDULE]


def retry_delay(attempt: int) -> float:
    """The wait after failed attempt number `attempt` (1-based), with +-10% jitter so that
    the retries of many deliveries failing together spread out."""
    schedule = retry_schedule()
    base = schedule[min(attempt, len(schedule)) - 1] if schedule else 0.0
    return base * random.uniform(0.9, 1.1)


def circuit_open(destination: Destination, now: datetime) -> bool:
    return destination.circuit_open_until is not None and destination.circuit_open_until > now


def _due_query(destination: Destination, now: datetime) -> Any:
    earlier_unfinished = Delivery.objects.filter(
        destination_id=OuterRef("destination_id"),
        profile_id=OuterRef("profile_id"),
        id__lt=OuterRef("id"),
        status__in=UNFINISHED,
    )
    return (
        Delivery.objects.filter(destination=destination)
        .filter(
            Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            # Claimed by a worker that died (its lease ran out): sent again, same key.
            | Q(status=DeliveryStatus.SENDING, claimed_until__lt=now)
        )
        # Per profile, in order: nothing while an earlier delivery of the person is unfinished.
        .exclude(Q(profile_id__isnull=False) & Exists(earlier_unfinished))
        .order_by("id")
    )


def deliveries_claim(*, destination_id: int) -> tuple[Destination | None, list[Delivery]]:
    """Claim the next batch of due deliveries of a destination (none while it is disabled or
    its circuit is open; one, as a probe, when the circuit has just closed again)."""
    now = timezone.now()
    with transaction.atomic():
        destination = (
            Destination.objects.select_related("resource").filter(pk=destination_id).first()
        )
        if destination is None or not destination.enabled or circuit_open(destination, now):
            return destination, []
        cls = destination_type(destination.kind)
        limit = cls.max_batch(destination.settings) if cls is not None else 1
        if destination.consecutive_failures >= settings.CDP_DESTINATION_CIRCUIT_THRESHOLD:
            limit = 1  # half-open: one probe decides whether the circuit closes
        query = _due_query(destination, now)
        if connection.features.has_select_for_update_skip_locked:
            query = query.select_for_update(skip_locked=True, of=("self",))
        claimed = list(query[:limit])
        if claimed:
            lease = now + timedelta(seconds=settings.CDP_DESTINATION_LEASE_SECONDS)
            Delivery.objects.filter(pk__in=[d.pk for d in claimed]).update(
                status=DeliveryStatus.SENDING, claimed_until=lease
            )
    return destination, claimed


def _send(
    destination: Destination, batch: Sequence[Delivery], *, test: bool = False
) -> list[DeliveryResult]:
    cls = destination_type(destination.kind)
    if cls is None:
        return [
            DeliveryResult(ok=False, error=f"unknown destination type {destination.kind!r}")
            for _ in batch
        ]
    resource = destination.resource
    credentials = (
        (resource.test_credentials or resource.credentials) if test else (resource.credentials)
    )
    context = SendContext(
        credentials=credentials or {},
        settings=destination.settings or {},
        allow_internal=resource.internal,
        destination_name=destination.name,
    )
    outgoing = [
        Outgoing(
            delivery_id=d.pk or 0,
            key=d.key,
            trigger=d.trigger,
            payload=d.payload,
            profile_id=str(d.profile_id) if d.profile_id else None,
        )
        for d in batch
    ]
    try:
        results = cls().send(context, outgoing)
    except Exception as exc:  # a type's bug fails the attempt, visibly, never the worker
        logger.exception("Destination %s: its type %s failed", destination, destination.kind)
        results = [DeliveryResult(ok=False, error=f"{type(exc).__name__}: {exc}"[:500])] * len(
            batch
        )
    if len(results) != len(batch):
        results = [DeliveryResult(ok=False, error="the type answered the wrong number of results")]
        results *= len(batch)
    return results


def deliveries_record(
    *, destination: Destination, batch: Sequence[Delivery], results: Sequence[DeliveryResult]
) -> None:
    """Record a batch's outcomes: delivered, retried later, dead after the last attempt; the
    attempt log; the destination's circuit (and its disabling on HTTP 410)."""
    now = timezone.now()
    retries = len(retry_schedule())
    attempts = []
    failures = 0
    succeeded = False
    retry_after: float | None = None
    gone: DeliveryResult | None = None
    with transaction.atomic():
        for delivery, result in zip(batch, results, strict=True):
            attempts.append(
                DeliveryAttempt(
                    delivery=delivery,
                    destination=destination,
                    at=now,
                    ok=result.ok,
                    status_code=result.status_code,
                    latency_ms=result.latency_ms,
                    error=result.error[:500],
                    response_snippet=result.response[:1000],
                )
            )
            fields: dict[str, Any] = {
                "claimed_until": None,
                "last_status_code": result.status_code,
                "last_error": result.error[:2000],
                "latency_ms": result.latency_ms,
            }
            if result.ok:
                succeeded = True
                fields.update(status=DeliveryStatus.DELIVERED, delivered_at=now)
                fields["attempts"] = delivery.attempts + 1
            elif result.gone:
                # Not the delivery's fault: it waits, unspent, until the destination is resumed.
                gone = result
                fields.update(status=DeliveryStatus.PENDING, next_attempt_at=now)
            else:
                failures += 1
                done = delivery.attempts + 1
                fields["attempts"] = done
                if done > retries:
                    fields["status"] = DeliveryStatus.DEAD
                else:
                    wait = retry_delay(done)
                    if result.retry_after is not None:
                        wait = result.retry_after
                        retry_after = max(retry_after or 0.0, wait)
                    fields.update(
                        status=DeliveryStatus.PENDING,
                        next_attempt_at=now + timedelta(seconds=wait),
                    )
            Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.SENDING).update(**fields)
        DeliveryAttempt.objects.bulk_create(attempts)
        _circuit(destination.pk, now, succeeded, failures, retry_after, gone)


def _circuit(
    destination_id: int,
    now: datetime,
    succeeded: bool,
    failures: int,
    retry_after: float | None,
    gone: DeliveryResult | None,
) -> None:
    destination = Destination.objects.select_for_update().get(pk=destination_id)
    fields = []
    if succeeded and not failures:
        if destination.consecutive_failures or destination.circuit_open_until:
            destination.consecutive_failures = 0
            destination.circuit_opens = 0
            destination.circuit_open_until = None
            fields += ["consecutive_failures", "circuit_opens", "circuit_open_until"]
    elif failures:
        destination.consecutive_failures += failures
        fields.append("consecutive_failures")
        if destination.consecutive_failures >= settings.CDP_DESTINATION_CIRCUIT_THRESHOLD:
            destination.circuit_opens += 1
            cooldown = min(
                settings.CDP_DESTINATION_CIRCUIT_COOLDOWN * 2 ** (destination.circuit_opens - 1),
                settings.CDP_DESTINATION_CIRCUIT_MAX_COOLDOWN,
            )
            destination.circuit_open_until = now + timedelta(seconds=cooldown)
            fields += ["circuit_opens", "circuit_open_until"]
            logger.warning(
                "Destination %s: %d failures in a row, circuit open for %gs",
                destination,
                destination.consecutive_failures,
                cooldown,
            )
    if retry_after:
        # The target asked for a pause (429/503 Retry-After): nothing is sent before then.
        until = now + timedelta(seconds=retry_after)
        if destination.circuit_open_until is None or destination.circuit_open_until < until:
            destination.circuit_open_until = until
            fields.append("circuit_open_until")
    if gone is not None:
        destination.enabled = False
        destination.disabled_reason = (
            f"Disabled at {now.isoformat(timespec='seconds')}: the target answered HTTP 410 "
            "Gone. Resume the destination once the target takes deliveries again."
        )
        fields += ["enabled", "disabled_reason"]
    if fields:
        destination.save(update_fields=sorted(set(fields)))


def destination_deliver(*, destination_id: int, budget_seconds: float | None = None) -> int:
    """Send a destination's due deliveries, batch after batch, for at most `budget_seconds`;
    when some are still due then, the destination's worker is queued again. Returns how many
    deliveries were attempted."""
    budget = budget_seconds if budget_seconds is not None else settings.CDP_DESTINATION_BUDGET
    deadline = time.monotonic() + budget
    attempted = 0
    while True:
        destination, batch = deliveries_claim(destination_id=destination_id)
        if destination is None or not batch:
            return attempted
        results = _send(destination, batch)
        deliveries_record(destination=destination, batch=batch, results=results)
        attempted += len(batch)
        if time.monotonic() > deadline:
            deliveries_wake([destination_id])
            return attempted


def deliveries_due_destinations(now: datetime | None = None) -> list[int]:
    """The destinations that have deliveries due now (the periodic dispatch queues each)."""
    now = now or timezone.now()
    return sorted(
        set(
            Delivery.objects.filter(
                Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
                | Q(status=DeliveryStatus.SENDING, claimed_until__lt=now)
            )
            .filter(destination__enabled=True)
            .exclude(destination__circuit_open_until__gt=now)
            .values_list("destination_id", flat=True)
            .distinct()
        )
    )


def deliveries_dispatch_due() -> int:
    """Queue the worker of every destination with due deliveries (retries, debounced changes,
    deliveries whose worker died). Returns how many destinations were queued."""
    ids = deliveries_due_destinations()
    for destination_id in ids:
        deliveries_wake([destination_id])
    return len(ids)


# --- replay, pause, test ----------------------------------------------------------------------


@dataclass(slots=True)
class ReplayResult:
    replayed: int = 0
    superseded: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"replayed": self.replayed, "superseded": self.superseded}


def deliveries_replay(
    *, destination: Destination, ids: Sequence[int] | None = None
) -> ReplayResult:
    """Send dead deliveries again (those named, or all of the destination's), from a fresh
    attempt count. A profile state for which a later one exists is marked superseded instead:
    a replay never overwrites a newer profile state with an older one."""
    result = ReplayResult()
    with transaction.atomic():
        dead = Delivery.objects.select_for_update().filter(
            destination=destination, status=DeliveryStatus.DEAD
        )
        if ids is not None:
            dead = dead.filter(pk__in=list(ids))
        rows = list(dead.order_by("id"))
        later = Delivery.objects.filter(
            destination=destination,
            profile_id=OuterRef("profile_id"),
            trigger=Trigger.PROFILE_CHANGED,
            id__gt=OuterRef("id"),
        ).exclude(status=DeliveryStatus.DEAD)
        stale = set(
            Delivery.objects.filter(pk__in=[r.pk for r in rows], trigger=Trigger.PROFILE_CHANGED)
            .filter(Exists(later))
            .values_list("pk", flat=True)
        )
        now = timezone.now()
        again = [r.pk for r in rows if r.pk not in stale]
        Delivery.objects.filter(pk__in=stale).update(status=DeliveryStatus.SUPERSEDED)
        Delivery.objects.filter(pk__in=again).update(
            status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now, last_error=""
        )
        result.replayed, result.superseded = len(again), len(stale)
        if again:
            deliveries_wake([destination.pk])
    return result


def destination_pause(*, destination: Destination) -> Destination:
    """Stop sending (and queueing) until resumed; deliveries already written wait."""
    destination.enabled = False
    destination.disabled_reason = "Paused"
    destination.save(update_fields=["enabled", "disabled_reason", "updated_at"])
    return destination


def destination_resume(*, destination: Destination) -> Destination:
    """Send again: the circuit closes and waiting deliveries go out."""
    with transaction.atomic():
        destination.enabled = True
        destination.disabled_reason = ""
        destination.consecutive_failures = 0
        destination.circuit_opens = 0
        destination.circuit_open_until = None
        destination.save(
            update_fields=[
                "enabled",
                "disabled_reason",
                "consecutive_failures",
                "circuit_opens",
                "circuit_open_until",
                "updated_at",
            ]
        )
        deliveries_wake([destination.pk])
    return destination


def destination_send_test(*, destination: Destination, payload: Any = None) -> dict[str, Any]:
    """Send one test message now, with the resource's test credentials (its production ones
    when it has none), and say what happened. Nothing is stored."""
    from apps.destinations.services.mapping import envelope

    data = payload if payload is not None else {"test": True, "destination": destination.name}
    if destination.kind == "email" and payload is None:
        raise DomainError(
            'A test email needs a payload: {"to", "subject", "body"}', field="payload"
        )
    probe = Delivery(
        destination=destination,
        key=f"test_{uuid.uuid4().hex}",
        trigger="test",
        payload=envelope("test", data),
        next_attempt_at=timezone.now(),
    )
    result = _send(destination, [probe], test=True)[0]
    return {
        "ok": result.ok,
        "status_code": result.status_code,
        "error": result.error,
        "response": result.response,
        "latency_ms": result.latency_ms,
        "credentials": "test" if destination.resource.test_credentials else "production",
        "key": probe.key,
    }


# --- the log: retention and figures -----------------------------------------------------------


def deliveries_purge(*, now: datetime | None = None) -> int:
    """Delete the attempt log and the finished deliveries older than the retention."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.CDP_DESTINATION_LOG_RETENTION_DAYS)
    attempts, _ = DeliveryAttempt.objects.filter(at__lt=cutoff).delete()
    finished, _ = Delivery.objects.filter(
        created_at__lt=cutoff,
        status__in=[DeliveryStatus.DELIVERED, DeliveryStatus.SUPERSEDED, DeliveryStatus.DEAD],
    ).delete()
    return attempts + finished


def destination_counts(destination: Destination) -> dict[str, int]:
    counts = dict.fromkeys(DeliveryStatus.values, 0)
    for row in destination.deliveries.values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts
