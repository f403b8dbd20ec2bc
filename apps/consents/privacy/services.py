"""Writes on privacy requests: create one (validated, queued after the commit), run it (export,
delete, suppress, unsuppress) with progress, and the housekeeping of exports and stalled runs."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.admin.models import CHANGE
from django.db import transaction
from django.utils import timezone

from apps.consents.models import (
    PrivacyExport,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    Suppression,
)
from apps.consents.privacy import hooks
from apps.consents.privacy.erase import person_counts, person_erase
from apps.consents.privacy.export import export_build
from apps.consents.privacy.person import person_exists, person_resolve
from apps.consents.privacy.suppression import (
    digest,
    suppressions_add,
    suppressions_remove,
)
from apps.events.incoming import Rejection, clean_distinct_id
from cdp.audit import audit_log
from cdp.errors import DomainError
from cdp.tasks import enqueue, enqueue_on_commit

logger = logging.getLogger(__name__)

RUN_TASK = "apps.consents.privacy.tasks.privacy_request_run"
MAX_REFERENCE = 200
OPEN = (PrivacyRequestStatus.PENDING, PrivacyRequestStatus.RUNNING)
# Kinds that need something stored about the person to act on.
NEEDS_DATA = (PrivacyRequestKind.EXPORT, PrivacyRequestKind.DELETE)


def privacy_request_create(
    *, kind: Any, distinct_id: Any, reference: Any = "", user: Any = None
) -> PrivacyRequest:
    """Validate and store a request, and queue its run once committed. Raises DomainError
    (nothing stored) for an unknown kind, a bad id, an unknown person (export, delete), an id
    that is not suppressed (unsuppress) or a request of the same kind already open."""
    if kind not in PrivacyRequestKind.values:
        raise DomainError(
            f"must be one of {', '.join(PrivacyRequestKind.values)}",
            field="kind",
            code="invalid_kind",
        )
    try:
        subject = clean_distinct_id(distinct_id)
    except Rejection as exc:
        raise DomainError(exc.error, field=exc.field) from None
    if not isinstance(reference, str) or len(reference) > MAX_REFERENCE:
        raise DomainError(f"must be text of at most {MAX_REFERENCE} characters", field="reference")
    subject_digest = digest(subject)
    if kind in NEEDS_DATA and not person_exists(person_resolve(distinct_id=subject)):
        raise DomainError(
            "Nothing is stored about this id (no profile, no event): check the id",
            field="distinct_id",
            code="unknown_person",
            status_code=404,
        )
    if (
        kind == PrivacyRequestKind.UNSUPPRESS
        and not Suppression.objects.filter(digest=subject_digest).exists()
    ):
        raise DomainError("This id is not suppressed", field="distinct_id", code="not_suppressed")
    with transaction.atomic():
        open_same = PrivacyRequest.objects.select_for_update().filter(
            subject_digest=subject_digest, kind=kind, status__in=OPEN
        )
        if open_same.exists():
            raise DomainError(
                "A request of this kind for this id is already pending or running",
                field="distinct_id",
                code="request_open",
                status_code=409,
            )
        request = PrivacyRequest.objects.create(
            kind=kind,
            distinct_id=subject,
            subject_digest=subject_digest,
            reference=reference.strip(),
            requested_by=user if getattr(user, "pk", None) else None,
        )
        enqueue_on_commit(
            RUN_TASK,
            [str(request.pk)],
            description=f"privacy request {request.pk} (the housekeeping task retries it)",
        )
    return request


def privacy_request_retry(*, request: PrivacyRequest) -> bool:
    """Queue a failed request again; False when it had not failed."""
    updated = PrivacyRequest.objects.filter(
        pk=request.pk, status=PrivacyRequestStatus.FAILED
    ).update(status=PrivacyRequestStatus.PENDING, error="", finished_at=None)
    if updated:
        enqueue_on_commit(RUN_TASK, [str(request.pk)], description=f"privacy request {request.pk}")
    return bool(updated)


class _Progress:
    """Counts per table, written to the request (with a heartbeat) as batches complete."""

    def __init__(self, request: PrivacyRequest, prefix: str = "") -> None:
        self.request = request
        self.counts: dict[str, int] = dict(request.counts or {})
        self.prefix = prefix

    def add(self, table: str, n: int) -> None:
        key = f"{self.prefix}{table}"
        self.counts[key] = self.counts.get(key, 0) + n
        self.save()

    def set(self, table: str, n: int) -> None:
        self.counts[f"{self.prefix}{table}"] = n
        self.save()

    def save(self) -> None:
        PrivacyRequest.objects.filter(pk=self.request.pk).update(
            counts=self.counts, heartbeat_at=timezone.now()
        )


def _claim(request_id: uuid.UUID | str, *, resume: bool) -> PrivacyRequest | None:
    statuses = [PrivacyRequestStatus.PENDING] + ([PrivacyRequestStatus.RUNNING] if resume else [])
    now = timezone.now()
    with transaction.atomic():
        request = (
            PrivacyRequest.objects.select_for_update()
            .filter(pk=request_id, status__in=statuses)
            .first()
        )
        if request is None:
            return None
        request.status = PrivacyRequestStatus.RUNNING
        request.started_at = request.started_at or now
        request.heartbeat_at = now
        request.save(update_fields=["status", "started_at", "heartbeat_at"])
    return request


def privacy_request_run(*, request_id: uuid.UUID | str, resume: bool = False) -> None:
    """Run a pending request (or resume one whose worker was lost; every step is idempotent).
    Ends done, or failed with a message that holds no personal data."""
    request = _claim(request_id, resume=resume)
    if request is None:
        return
    try:
        RUNNERS[request.kind](request)
    except Exception as exc:  # any failure must end the request visibly, not leave it running
        logger.exception("Privacy request %s failed", request.pk)
        PrivacyRequest.objects.filter(pk=request.pk).update(
            status=PrivacyRequestStatus.FAILED,
            finished_at=timezone.now(),
            error=f"{type(exc).__name__}: see the worker's log for request {request.pk}, "
            "then run it again (admin action).",
        )
        return
    request.refresh_from_db()
    request.status = PrivacyRequestStatus.DONE
    request.finished_at = timezone.now()
    if request.kind != PrivacyRequestKind.EXPORT:
        request.distinct_id = ""  # the audit record keeps no personal data
    request.save(update_fields=["status", "finished_at", "distinct_id"])
    if request.requested_by_id is not None:
        done = ", ".join(f"{k} {v}" for k, v in sorted(request.counts.items())) or "nothing"
        audit_log(
            user=request.requested_by,
            obj=request,
            action_flag=CHANGE,
            message=f"{request.get_kind_display()} done: {done}.",
        )


def _set_totals(request: PrivacyRequest, totals: dict[str, int]) -> None:
    request.totals = totals
    request.save(update_fields=["totals"])


def _run_export(request: PrivacyRequest) -> None:
    person = person_resolve(distinct_id=request.distinct_id)
    totals = person_counts(person)
    totals.pop("admin_log", None)
    _set_totals(request, totals)
    progress = _Progress(request)
    content, sha256, _ = export_build(
        person=person, request_id=str(request.pk), progress=progress.set
    )
    days = int(getattr(settings, "CDP_PRIVACY_EXPORT_DAYS", 7))
    PrivacyExport.objects.update_or_create(
        request=request,
        defaults={
            "content": content,
            "size": len(content),
            "sha256": sha256,
            "expires_at": timezone.now() + timedelta(days=days),
        },
    )


def _run_delete(request: PrivacyRequest, *, totals: dict[str, int] | None = None) -> None:
    person = person_resolve(distinct_id=request.distinct_id)
    counted = person_counts(person)
    _set_totals(request, {**(totals or {}), **counted})
    progress = _Progress(request)
    with transaction.atomic():
        forwarded = hooks.profile_deleted(person=person, request_id=request.pk)
    person_erase(person=person, progress=progress.add)
    # Exports of this person are personal data too.
    digests = [digest(i) for i in person.distinct_ids]
    exports = PrivacyExport.objects.filter(request__subject_digest__in=digests)
    progress.set("exports", exports.delete()[0])
    PrivacyRequest.objects.filter(subject_digest__in=digests).exclude(status__in=OPEN).update(
        distinct_id=""
    )
    progress.set("forwarded_to", forwarded)


def _run_suppress(request: PrivacyRequest) -> None:
    person = person_resolve(distinct_id=request.distinct_id)
    _set_totals(request, {"suppressed_ids": len(person.distinct_ids)})
    suppressions_add(distinct_ids=person.distinct_ids, request=request)
    # Every id is suppressed (some may have been already): the count says how many are.
    _Progress(request).set("suppressed_ids", len(person.distinct_ids))


def _run_suppress_and_delete(request: PrivacyRequest) -> None:
    # Suppress first: events arriving while the history is deleted are already dropped.
    _run_suppress(request)
    request.refresh_from_db()
    _run_delete(request, totals=request.totals)


def _run_unsuppress(request: PrivacyRequest) -> None:
    removed = suppressions_remove(distinct_id=request.distinct_id)
    _set_totals(request, {"unsuppressed_ids": removed})
    _Progress(request).set("unsuppressed_ids", removed)


RUNNERS: dict[str, Callable[[PrivacyRequest], None]] = {
    PrivacyRequestKind.EXPORT: _run_export,
    PrivacyRequestKind.DELETE: _run_delete,
    PrivacyRequestKind.SUPPRESS: _run_suppress,
    PrivacyRequestKind.SUPPRESS_AND_DELETE: _run_suppress_and_delete,
    PrivacyRequestKind.UNSUPPRESS: _run_unsuppress,
}


def privacy_exports_purge() -> int:
    """Delete expired export archives and forget their requests' subject."""
    expired = PrivacyExport.objects.filter(expires_at__lte=timezone.now())
    request_ids = list(expired.values_list("request_id", flat=True))
    deleted, _ = expired.delete()
    PrivacyRequest.objects.filter(pk__in=request_ids).update(distinct_id="")
    return deleted


def privacy_requests_recover() -> int:
    """Queue again the running requests whose heartbeat stopped (their worker was lost) and the
    pending ones never picked up (the broker was down when they were made)."""
    stalled_after = int(getattr(settings, "CDP_PRIVACY_STALLED_SECONDS", 900))
    now = timezone.now()
    cutoff = now - timedelta(seconds=stalled_after)
    queued = 0
    stalled = PrivacyRequest.objects.filter(
        status=PrivacyRequestStatus.RUNNING, heartbeat_at__lt=cutoff
    )
    for pk in list(stalled.values_list("pk", flat=True)):
        # Moving the heartbeat claims the resumption: the next pass leaves it alone.
        if stalled.filter(pk=pk).update(heartbeat_at=now):
            enqueue(RUN_TASK, [str(pk), True], description=f"stalled privacy request {pk}")
            queued += 1
    pending = PrivacyRequest.objects.filter(
        status=PrivacyRequestStatus.PENDING, created_at__lt=cutoff
    )
    for pk in pending.values_list("pk", flat=True):
        enqueue(RUN_TASK, [str(pk)], description=f"pending privacy request {pk}")
        queued += 1
    return queued
