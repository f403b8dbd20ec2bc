"""The background thread: takes calls off the queue and sends them in batches, when a batch is
full or when the flush interval has passed since its first call, whichever comes first."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from cdp_analytics.delivery import Sender
from cdp_analytics.messages import Message

logger = logging.getLogger("cdp_analytics")

# Markers put on the queue by flush() (send what is gathered now) and shutdown() (then stop).
FLUSH = object()
STOP = object()


class Consumer(threading.Thread):
    """Sends what the client queues. `done(n)` is called once n calls are settled (delivered
    or given up on), which is what flush() waits for."""

    def __init__(
        self,
        *,
        inbox: queue.Queue[Any],
        sender: Sender,
        batch_size: int,
        flush_interval: float,
        done: Callable[[int], None],
    ) -> None:
        super().__init__(name="cdp-analytics-consumer", daemon=True)
        self.inbox = inbox
        self.sender = sender
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.done = done

    def run(self) -> None:
        stop = False
        while not stop:
            item = self.inbox.get()
            if item is STOP:
                break
            if item is FLUSH:
                continue
            batch: list[Message] = [item]
            deadline = time.monotonic() + self.flush_interval
            while len(batch) < self.batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self.inbox.get(timeout=remaining)
                except queue.Empty:
                    break
                if item is FLUSH:
                    break
                if item is STOP:
                    stop = True
                    break
                batch.append(item)
            self._send(batch)

    def _send(self, batch: list[Message]) -> None:
        try:
            self.sender.deliver(batch)
        except Exception:
            # A bug, not a delivery failure (those are handled in deliver): keep the thread
            # alive so later calls and flush() still work.
            logger.exception("unexpected error while sending %d call(s)", len(batch))
            self.sender.counters.add(failed=len(batch))
        finally:
            self.done(len(batch))
