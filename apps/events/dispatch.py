"""Queueing the processing of committed events from a background thread of the web process.

A tracking request commits its events, then (CDP_DISPATCH_MODE "background") hands their ids
to this process's dispatcher and answers: the Celery publish (message building and a round
trip to Redis) is off the request path. The dispatcher's thread publishes what accumulated
every CDP_DISPATCH_INTERVAL_MS milliseconds (at once when a task's worth of ids is waiting),
so many small requests make one processing task.

Nothing is lost when the publish fails or the process dies before it: the events are committed
and unprocessed, and the periodic redispatch (CDP_REDISPATCH_AFTER_SECONDS) queues them again.
The dispatcher is flushed when the process exits (atexit, and gunicorn's worker_exit hook).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Sequence

from django.conf import settings

from cdp.tasks import enqueue

logger = logging.getLogger(__name__)

# Processing runs in apps.pipeline, above this app: events queue it by task name.
PROCESS_EVENTS = "apps.pipeline.tasks.process_events"
PROCESS_EPHEMERAL_EVENTS = "apps.pipeline.tasks.process_ephemeral_events"


def events_publish(event_ids: Sequence[int]) -> bool:
    """Queue processing of stored events now, CDP_PROCESS_BATCH_SIZE per task. A broker
    failure is logged, not raised (returns False): the events are committed and the periodic
    redispatch will queue them again."""
    return enqueue(
        PROCESS_EVENTS,
        [list(event_ids)],
        chunk=settings.CDP_PROCESS_BATCH_SIZE,
        description=f"processing of {len(event_ids)} events; the redispatcher will retry",
    )


Sender = Callable[[Sequence[int]], object]


class Dispatcher:
    """Collects event ids from any thread; one daemon thread publishes them in batches."""

    def __init__(self, send: Sender, *, interval: float, max_ids: int) -> None:
        self._send = send
        self.interval = interval
        self.max_ids = max(1, max_ids)
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._pending: list[int] = []
        self._has_work = threading.Event()  # set when ids are waiting (or on stop)
        self._full = threading.Event()  # set when a task's worth is waiting (or on stop)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._sending = threading.Lock()  # one publish at a time: the thread's or a flush's

    def submit(self, event_ids: Sequence[int]) -> None:
        """Queue these ids for the next publish; never blocks on the broker."""
        if not event_ids:
            return
        if self._pid != os.getpid():
            # A forked child: the parent's ids and thread are the parent's business.
            self._reset()
        with self._lock:
            if self._stopping:
                stopped = True
            else:
                stopped = False
                self._pending.extend(event_ids)
                if self._thread is None:
                    self._start()
                self._has_work.set()
                if len(self._pending) >= self.max_ids:
                    self._full.set()
        if stopped:  # exiting: publish here rather than leave them to the redispatcher
            self._publish(list(event_ids))

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cdp-dispatcher", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def _take(self) -> list[int]:
        with self._lock:
            ids, self._pending = self._pending, []
            self._has_work.clear()
            self._full.clear()
        return ids

    def _publish(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._sending:
            try:
                self._send(ids)
            except Exception:  # the sender logs broker errors; anything else must not kill us
                logger.exception(
                    "Could not queue processing of %d events; the redispatcher will retry",
                    len(ids),
                )

    def _run(self) -> None:
        while True:
            self._has_work.wait()
            if not self._stopping:
                # Gather the ids of more requests for a moment, unless a task's worth is here.
                self._full.wait(self.interval)
            self._publish(self._take())
            if self._stopping:
                return

    def flush(self) -> None:
        """Publish what is waiting now, in the caller's thread. On return, every id submitted
        before the call has had its publish attempted (one in flight on the thread is waited
        for)."""
        if self._pid == os.getpid():
            with self._sending:
                pass
            self._publish(self._take())

    def stop(self, timeout: float = 5.0) -> None:
        """Publish what is waiting and stop the thread (process exit). Idempotent."""
        if self._pid != os.getpid():
            return
        with self._lock:
            self._stopping = True
            thread = self._thread
            self._has_work.set()
            self._full.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.flush()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)


_dispatcher: Dispatcher | None = None
_dispatcher_lock = threading.Lock()


def dispatcher() -> Dispatcher:
    """This process's dispatcher, made on first use with the current settings."""
    global _dispatcher
    if _dispatcher is None:
        with _dispatcher_lock:
            if _dispatcher is None:
                _dispatcher = Dispatcher(
                    lambda ids: events_publish(ids),
                    interval=settings.CDP_DISPATCH_INTERVAL_MS / 1000,
                    max_ids=settings.CDP_PROCESS_BATCH_SIZE,
                )
    return _dispatcher


def dispatcher_flush() -> None:
    """Publish what this process's dispatcher holds (tests, and before a broker switch)."""
    if _dispatcher is not None:
        _dispatcher.flush()


def dispatcher_stop() -> None:
    """Publish what is waiting and stop the thread: gunicorn's worker_exit hook calls this."""
    if _dispatcher is not None:
        _dispatcher.stop()
