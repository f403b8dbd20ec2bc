"""Delivering queued messages: consecutive track events share `POST /api/track` batches (split
by count and size), every other call is one request; outcomes are counted and reported."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cdp_analytics.errors import APIError, RejectedError
from cdp_analytics.messages import TRACK_PATH, Message, batch_body, now_iso
from cdp_analytics.transport import Transport

logger = logging.getLogger("cdp_analytics")

# The server's limit per request is 1000 events and 1 MB (decompressed).
MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 1024 * 1024

ErrorCallback = Callable[[APIError, list[dict[str, Any]]], object]


@dataclass(frozen=True, slots=True)
class Stats:
    """What a client did so far.

    - `queued`: calls waiting to be sent, or being sent;
    - `delivered`: calls the server accepted (stored, or applied);
    - `duplicates`: events the server already had (a retry whose first answer was lost);
    - `rejected`: events the server refused one by one (the reason is logged);
    - `failed`: calls given up on after every retry, or refused as a whole;
    - `dropped`: calls not queued because the queue was full (max_queue_size);
    - `retries`: requests sent again after a network error, a 429 or a 5xx."""

    queued: int = 0
    delivered: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed: int = 0
    dropped: int = 0
    retries: int = 0


class Counters:
    """The mutable, thread-safe counts behind Stats."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.delivered = 0
        self.duplicates = 0
        self.rejected = 0
        self.failed = 0
        self.dropped = 0

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)


def _runs(messages: Sequence[Message]) -> Iterator[list[Message]]:
    """Consecutive track messages together; any other message alone (the order is kept)."""
    run: list[Message] = []
    for message in messages:
        if message.batchable:
            run.append(message)
            continue
        if run:
            yield run
            run = []
        yield [message]
    if run:
        yield run


def _chunks(messages: list[Message], max_events: int, max_bytes: int) -> Iterator[list[Message]]:
    chunk: list[Message] = []
    size = 0
    for message in messages:
        if chunk and (len(chunk) >= max_events or size + len(message.data) + 1 > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(message)
        size += len(message.data) + 1
    if chunk:
        yield chunk


def _payloads(messages: Sequence[Message]) -> list[dict[str, Any]]:
    return [json.loads(m.data) for m in messages]


class Sender:
    """Sends messages through a Transport and keeps the counts."""

    def __init__(
        self,
        *,
        transport: Transport,
        counters: Counters,
        batch_context: bytes,
        max_batch_events: int,
        max_batch_bytes: int,
        on_error: ErrorCallback | None,
    ) -> None:
        self.transport = transport
        self.counters = counters
        self.batch_context = batch_context
        self.max_batch_events = max_batch_events
        self.max_batch_bytes = max_batch_bytes
        self.on_error = on_error

    def deliver(self, messages: Sequence[Message], *, raise_errors: bool = False) -> None:
        """Send the messages in order. A failure is counted, logged and given to on_error;
        with raise_errors it is also raised (synchronous mode)."""
        for run in _runs(messages):
            if run[0].batchable:
                for chunk in _chunks(run, self.max_batch_events, self.max_batch_bytes):
                    self._send_batch(chunk, raise_errors)
            else:
                self._send_one(run[0], raise_errors)

    def _fail(self, error: APIError, messages: Sequence[Message], raise_errors: bool) -> None:
        logger.error(
            "%d call(s) to %s not delivered: %s",
            len(messages),
            messages[0].path,
            error,
        )
        if self.on_error is not None:
            try:
                self.on_error(error, _payloads(messages))
            except Exception:
                logger.exception("the on_error callback failed")
        if raise_errors:
            raise error

    def _send_batch(self, chunk: list[Message], raise_errors: bool) -> None:
        context = self.batch_context
        try:
            answer = self.transport.post(TRACK_PATH, lambda: batch_body(chunk, now_iso(), context))
        except APIError as error:
            if error.status == 413 and len(chunk) > 1:
                # The server's limits are lower than ours: send halves.
                half = len(chunk) // 2
                self._send_batch(chunk[:half], raise_errors)
                self._send_batch(chunk[half:], raise_errors)
                return
            self.counters.add(failed=len(chunk))
            self._fail(error, chunk, raise_errors)
            return
        if not isinstance(answer, dict):
            answer = {}
        rejected = answer.get("rejected") or []
        accepted = int(answer.get("accepted", 0))
        duplicates = int(answer.get("duplicates", 0))
        self.counters.add(
            delivered=len(chunk) - len(rejected), duplicates=duplicates, rejected=len(rejected)
        )
        if rejected:
            for entry in rejected:
                index = entry.get("index")
                if isinstance(index, int) and 0 <= index < len(chunk):
                    entry["message_id"] = chunk[index].message_id
            refused = [
                chunk[e["index"]]
                for e in rejected
                if isinstance(e.get("index"), int) and 0 <= e["index"] < len(chunk)
            ]
            self._fail(RejectedError(rejected, accepted=accepted), refused or chunk, raise_errors)

    def _send_one(self, message: Message, raise_errors: bool) -> None:
        try:
            answer = self.transport.post(message.path, lambda: message.body(now_iso()))
        except APIError as error:
            self.counters.add(failed=1)
            self._fail(error, [message], raise_errors)
            return
        if not isinstance(answer, dict):
            answer = {}
        if answer.get("rejected"):
            self.counters.add(rejected=1)
            self._fail(RejectedError(answer["rejected"], accepted=0), [message], raise_errors)
            return
        errors = answer.get("errors")
        if isinstance(errors, dict) and errors:
            # People and group operations apply what they can and name each key they could
            # not (incrementing a text trait, say): the call was delivered; say what failed.
            logger.warning(
                "%s applied, except: %s",
                message.path,
                "; ".join(f"{key}: {reason}" for key, reason in errors.items()),
            )
        duplicates = int(answer.get("duplicates", 0))
        self.counters.add(delivered=1, duplicates=duplicates)
