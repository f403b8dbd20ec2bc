"""The Redis-stream bridge: read a stream with a consumer group and ingest each entry through
the same path as /api/track, acknowledging it only once its events are committed.

An entry carries its document as JSON in the field `data` (or `event`, or `json`): a native
event, a {"batch": [...]}, or any JSON the source's mapping turns into an event. Nothing is
lost when the process is killed: an entry read but not acknowledged stays pending in the
group and is read again, by this consumer when it starts (its own pending entries first) or by
any consumer once it has been idle for `claim_idle_ms` (XAUTOCLAIM). An entry read twice is
stored once: its events' message ids default to the stream name and entry id. An entry that
cannot become an event (no data field, not JSON, no valid event) is moved to the dead-letter
stream with the reason, then acknowledged. When storage or the rate limit refuses, the entry
stays pending and is tried again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from apps.events.bridges.ingest import bridge_ingest
from apps.events.wire.base import Envelope
from apps.sources.models import EventSource
from cdp.errors import DomainError

logger = logging.getLogger(__name__)

DATA_FIELDS = (b"data", b"event", b"json")
# Refusals that say "later", not "never": the entry stays pending and is tried again.
RETRY_LATER = {"rate_limited", "storage_unavailable"}


class Unparseable(Exception):
    """An entry that can never become an event: the reason goes to the dead-letter stream."""


@dataclass
class StreamStats:
    ingested: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retried: int = 0
    entries: int = 0


@dataclass
class StreamBridge:
    source: EventSource
    client: redis.Redis
    stream: str
    group: str = "cdp"
    consumer: str = "cdp-1"
    dead_letter: str = ""
    claim_idle_ms: int = 60_000
    count: int = 100
    block_ms: int = 1000
    retry_pause: float = 1.0
    stats: StreamStats = field(default_factory=StreamStats)

    def __post_init__(self) -> None:
        self.dead_letter = self.dead_letter or f"{self.stream}:dead-letter"

    def ensure_group(self) -> None:
        """The consumer group, created at the stream's start (and the stream with it)."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run(
        self,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        on_entry: Callable[[], object] = lambda: None,
        idle_exit: float | None = None,
        max_entries: int | None = None,
    ) -> StreamStats:
        self.ensure_group()
        own_pending = True  # first our own entries left pending by a previous run
        idle_since = time.monotonic()
        while not should_stop():
            if own_pending:
                entries = self._read("0")
                own_pending = bool(entries)
            else:
                entries = self._reclaim() or self._read(">")
            if not entries:
                if idle_exit is not None and time.monotonic() - idle_since >= idle_exit:
                    break
                continue
            idle_since = time.monotonic()
            for entry_id, fields in entries:
                if not self.handle(entry_id, fields):
                    time.sleep(self.retry_pause)  # storage or the rate limit said "later"
                    own_pending = True
                    break
                on_entry()
                if max_entries is not None and self.stats.entries >= max_entries:
                    return self.stats
        return self.stats

    def _read(self, start: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
        block = None if start == "0" else self.block_ms
        reply: Any = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=self.count, block=block
        )
        if not reply:
            return []
        _, entries = reply[0]
        # Pending entries that were deleted from the stream come back without fields.
        return [(entry_id, fields or {}) for entry_id, fields in entries]

    def _reclaim(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Entries another consumer read and never acknowledged (it died), idle long enough."""
        reply: Any = self.client.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id="0-0",
            count=self.count,
        )
        return [(entry_id, fields or {}) for entry_id, fields in reply[1]]

    def handle(self, entry_id: bytes, fields: dict[bytes, bytes]) -> bool:
        """Ingest one entry; acknowledge it once committed or dead-lettered. False: leave it
        pending (storage or the rate limit refused), to be tried again."""
        entry = entry_id.decode()
        try:
            document = self.parse(fields)
            result = bridge_ingest(
                source=self.source,
                document=document,
                envelope=Envelope(
                    source_id=str(self.source.pk),
                    received_at=timezone.now(),
                    user_agent=f"redis-stream {self.stream}",
                    max_event_bytes=settings.CDP_MAX_EVENT_BYTES,
                ),
                default_message_id=f"{self.stream}:{entry}",
            )
        except Unparseable as exc:
            self._dead_letter(entry, fields, str(exc))
        except DomainError as exc:
            if exc.code in RETRY_LATER:
                self.stats.retried += 1
                return False
            self._dead_letter(entry, fields, f"{exc.code}: {exc.message}")
        except DatabaseError as exc:
            logger.warning("Storage refused stream entry %s (%s); it stays pending", entry, exc)
            self.stats.retried += 1
            return False
        else:
            self.stats.ingested += result.accepted
            self.stats.duplicates += result.duplicates
        # Committed (or dead-lettered): only now is the entry acknowledged.
        self.client.xack(self.stream, self.group, entry_id)
        self.stats.entries += 1
        return True

    @staticmethod
    def parse(fields: dict[bytes, bytes]) -> Any:
        raw = next((fields[name] for name in DATA_FIELDS if name in fields), None)
        if raw is None:
            names = ", ".join(sorted(k.decode(errors="replace") for k in fields)) or "none"
            raise Unparseable(f"no data field: put the JSON in a field named data (had: {names})")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Unparseable(f"the data field is not JSON: {exc}") from None

    def _dead_letter(self, entry: str, fields: dict[bytes, bytes], reason: str) -> None:
        record: dict[Any, Any] = dict(fields)
        record.update(
            {
                b"dead_letter_reason": reason[:2000].encode(),
                b"dead_letter_entry": entry.encode(),
                b"dead_letter_stream": self.stream.encode(),
                b"dead_letter_source": str(self.source.pk).encode(),
            }
        )
        self.client.xadd(self.dead_letter, record)
        self.stats.dead_lettered += 1
        logger.warning("Stream entry %s moved to %s: %s", entry, self.dead_letter, reason)
