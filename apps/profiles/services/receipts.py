"""At most once per message id: people and group operations (applied at once, outside the event
pipeline) record the (source, message id) they carried in the transaction that applies them, so
that an SDK's retry of the same call is answered as a duplicate instead of applied twice."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.profiles.models import OperationReceipt

T = TypeVar("T")


def operation_apply_once(
    *, source_id: uuid.UUID, message_id: str | None, apply: Callable[[], T]
) -> tuple[T | None, bool]:
    """Run `apply` unless this source's operation `message_id` was applied already.

    Returns (apply's result, False), or (None, True) for a duplicate. The receipt and the
    operation commit together (one transaction: a crash leaves both or neither). Two requests
    with the same id at once: the second one's insert waits on the first one's unique-index
    entry and, once that commits, fails; it is then a duplicate and applies nothing. Without a
    message id the operation applies every time, as it always did."""
    if message_id is None:
        return apply(), False
    with transaction.atomic():
        try:
            with transaction.atomic():  # a savepoint: the conflict leaves the outer one usable
                OperationReceipt.objects.create(
                    source_id=source_id, message_id=message_id, applied_at=timezone.now()
                )
        except IntegrityError:
            return None, True
        return apply(), False


def operation_receipts_purge() -> int:
    """Delete receipts older than CDP_OPERATION_RECEIPT_RETENTION_DAYS (a retry after that is
    applied again); returns how many were deleted."""
    cutoff = timezone.now() - timedelta(days=settings.CDP_OPERATION_RECEIPT_RETENTION_DAYS)
    deleted, _ = OperationReceipt.objects.filter(applied_at__lt=cutoff).delete()
    return deleted
