"""Suppression: keyed tombstones of a person's ids, and the ingest gate that drops their events.

A tombstone is HMAC-SHA256(install key, distinct_id), never the id itself nor a bare hash (a
bare hash of an email is reversed by hashing a list of emails). The key is random, made once
per install and stored encrypted (cdp/crypto.py), apart from SECRET_KEY."""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from apps.consents.models import PrivacyRequest, Suppression, SuppressionKey
from apps.events.hooks import Dropped, GateOutcome
from apps.events.incoming import IncomingEvent
from apps.sources.models import EventSource
from cdp.shared_version import SharedVersion

GATE_NAME = "suppression"
# Before consent enforcement and compliance rules: a suppressed person's events go no further.
GATE_ORDER = 10
DROP_REASON = "suppressed"
SUPPRESSED_MESSAGE = (
    "This person asked not to be tracked (a privacy request): nothing was stored. Stop "
    "sending data for this id."
)
# The other ids an identity event carries (identify's anonymous id, alias's new id).
_LINKED_ID_PROPERTIES = ("$anonymous_id", "alias")
# Every process keeps the set of tombstones while their shared version is unchanged (no cache
# read nor database query per batch; another process's change is seen within
# CDP_SHARED_VERSION_CHECK_SECONDS). Past this many tombstones each batch asks the database
# instead; a snapshot is re-read after SNAPSHOT_SECONDS whatever the token says (a change whose
# token write failed is seen by then).
SUPPRESSIONS_VERSION = SharedVersion("consents:suppressions:version")
MAX_CACHED = 100_000
SNAPSHOT_SECONDS = 60.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    token: str | None
    digests: frozenset[str]
    read_at: float


_snapshot = _Snapshot(token=None, digests=frozenset(), read_at=0.0)
_snapshot_lock = threading.Lock()


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


def _changed() -> None:
    """Every process re-reads the tombstones at its next batch after the commit."""
    SUPPRESSIONS_VERSION.changed()


def suppressed_digests() -> frozenset[str] | None:
    """Every tombstone, from this process's snapshot while the cache's token is unchanged
    (read after the token, so that a change committed later changes the token again). None
    when the cache is down or there are too many to keep: ask the database per batch."""
    global _snapshot
    token = SUPPRESSIONS_VERSION.token()
    if token is None:
        return None
    current = _snapshot
    if current.token == token and time.monotonic() - current.read_at < SNAPSHOT_SECONDS:
        return current.digests
    rows = list(Suppression.objects.values_list("digest", flat=True)[: MAX_CACHED + 1])
    if len(rows) > MAX_CACHED:
        return None
    with _snapshot_lock:
        _snapshot = _Snapshot(token=token, digests=frozenset(rows), read_at=time.monotonic())
    return _snapshot.digests


def suppressions_add(*, distinct_ids: Iterable[str], request: PrivacyRequest) -> int:
    """Tombstone these ids (idempotent); returns how many were new."""
    digests = {digest(i) for i in distinct_ids}
    existing = set(Suppression.objects.filter(digest__in=digests).values_list("digest", flat=True))
    new = [Suppression(digest=d, request=request) for d in sorted(digests - existing)]
    Suppression.objects.bulk_create(new, ignore_conflicts=True)
    _changed()
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
    _changed()
    return deleted


def is_suppressed(distinct_id: str) -> bool:
    return Suppression.objects.filter(digest=digest(distinct_id)).exists()


def suppression_operation_gate(
    *, source: EventSource, distinct_ids: list[str]
) -> tuple[str, str] | None:
    """The operation gate: people and group operations on a suppressed id write nothing."""
    known = suppressed_digests()
    if known is not None and not known:
        return None
    digests = {digest(i) for i in distinct_ids}
    if known is not None:
        hit = bool(digests & known)
    else:
        hit = Suppression.objects.filter(digest__in=digests).exists()
    return (DROP_REASON, SUPPRESSED_MESSAGE) if hit else None


def _ids_of(event: IncomingEvent) -> Iterator[str]:
    yield event.distinct_id
    properties = event.properties if isinstance(event.properties, dict) else {}
    for name in _LINKED_ID_PROPERTIES:
        value = properties.get(name)
        if isinstance(value, str) and value:
            yield value


def suppression_gate(*, source: EventSource, events: list[IncomingEvent]) -> GateOutcome:
    """The ingest gate: drop every event carrying a suppressed id. With nothing suppressed it
    costs one cache read; otherwise a set lookup per id (or, past MAX_CACHED tombstones or
    without a cache, one indexed query per batch)."""
    known = suppressed_digests()
    if known is not None and not known:
        return GateOutcome(kept=events)
    by_event = [(event, [digest(i) for i in _ids_of(event)]) for event in events]
    wanted = {d for _, digests in by_event for d in digests}
    if known is not None:
        suppressed = wanted & known
    else:
        suppressed = set(
            Suppression.objects.filter(digest__in=wanted).values_list("digest", flat=True)
        )
    if not suppressed:
        return GateOutcome(kept=events)
    outcome = GateOutcome(kept=[])
    for event, digests in by_event:
        if suppressed.intersection(digests):
            outcome.dropped.append(
                Dropped(event=event, reason=DROP_REASON, message=SUPPRESSED_MESSAGE)
            )
        else:
            outcome.kept.append(event)
    return outcome
