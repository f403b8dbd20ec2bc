"""Suppression: keyed tombstones of a person's ids, and the ingest gate that drops their events.

A tombstone is HMAC-SHA256(install key, distinct_id), never the id itself nor a bare hash (a
bare hash of an email is reversed by hashing a list of emails). The key is random, made once
per install and stored encrypted (cdp/crypto.py), apart from SECRET_KEY."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Iterator

from django.db import IntegrityError, transaction

from apps.consents.models import PrivacyRequest, Suppression, SuppressionKey
from apps.events.hooks import Dropped, GateOutcome
from apps.events.incoming import IncomingEvent
from apps.sources.models import EventSource

GATE_NAME = "suppression"
# Before consent enforcement and compliance rules: a suppressed person's events go no further.
GATE_ORDER = 10
DROP_REASON = "suppressed"
# The other ids an identity event carries (identify's anonymous id, alias's new id).
_LINKED_ID_PROPERTIES = ("$anonymous_id", "alias")


@functools.cache
def _key() -> bytes:
    # One row, pk 1: two processes using the key for the first time at once can't make two.
    row = SuppressionKey.objects.filter(pk=1).first()
    if row is None:
        try:
            with transaction.atomic():
                row = SuppressionKey.objects.create(pk=1, key=secrets.token_urlsafe(48))
        except IntegrityError:  # another process made it first: use theirs
            row = SuppressionKey.objects.get(pk=1)
    return row.key.encode()


def key_cache_clear() -> None:
    """Forget the cached key (tests flush the database between cases)."""
    _key.cache_clear()


def digest(distinct_id: str) -> str:
    """The keyed digest of one id (hex)."""
    return hmac.new(_key(), distinct_id.encode(), hashlib.sha256).hexdigest()


def suppressions_add(*, distinct_ids: Iterable[str], request: PrivacyRequest) -> int:
    """Tombstone these ids (idempotent); returns how many were new."""
    digests = {digest(i) for i in distinct_ids}
    existing = set(Suppression.objects.filter(digest__in=digests).values_list("digest", flat=True))
    new = [Suppression(digest=d, request=request) for d in sorted(digests - existing)]
    Suppression.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def suppressions_remove(*, distinct_id: str) -> int:
    """Lift the suppression of the person this id belongs to: every tombstone written with
    this id's (by the same request). Returns how many were removed."""
    found = Suppression.objects.filter(digest=digest(distinct_id)).first()
    if found is None:
        return 0
    same_person = Suppression.objects.filter(pk=found.pk)
    if found.request_id is not None:
        same_person = Suppression.objects.filter(request_id=found.request_id)
    deleted, _ = same_person.delete()
    return deleted


def is_suppressed(distinct_id: str) -> bool:
    return Suppression.objects.filter(digest=digest(distinct_id)).exists()


def _ids_of(event: IncomingEvent) -> Iterator[str]:
    yield event.distinct_id
    properties = event.properties if isinstance(event.properties, dict) else {}
    for name in _LINKED_ID_PROPERTIES:
        value = properties.get(name)
        if isinstance(value, str) and value:
            yield value


def suppression_gate(*, source: EventSource, events: list[IncomingEvent]) -> GateOutcome:
    """The ingest gate: drop every event carrying a suppressed id (one indexed query)."""
    by_event = [(event, [digest(i) for i in _ids_of(event)]) for event in events]
    wanted = {d for _, digests in by_event for d in digests}
    suppressed = set(Suppression.objects.filter(digest__in=wanted).values_list("digest", flat=True))
    if not suppressed:
        return GateOutcome(kept=events)
    outcome = GateOutcome(kept=[])
    for event, digests in by_event:
        if suppressed.intersection(digests):
            outcome.dropped.append(
                Dropped(
                    event=event,
                    reason=DROP_REASON,
                    message="This person asked not to be tracked (a privacy request): the "
                    "event was not stored. Stop sending events for this id.",
                )
            )
        else:
            outcome.kept.append(event)
    return outcome
