"""The client: track, identify, alias, people and group calls, queued and sent in batches by a
background thread (or at once, in synchronous mode)."""

from __future__ import annotations

import atexit
import logging
import os
import queue
import socket
import sys
import threading
import traceback
import weakref
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

from cdp_analytics import messages
from cdp_analytics.consumer import FLUSH, STOP, Consumer
from cdp_analytics.delivery import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    Counters,
    ErrorCallback,
    Sender,
    Stats,
)
from cdp_analytics.errors import ClientClosedError
from cdp_analytics.messages import Message
from cdp_analytics.transport import RetryPolicy, Transport
from cdp_analytics.version import LIBRARY_NAME, VERSION

logger = logging.getLogger("cdp_analytics")

SERVER_ERROR_EVENT = "server_error"
MAX_STACKTRACE = 8000


# Clients of this process, so that a forked child (gunicorn --preload, Celery's prefork pool,
# multiprocessing) gets a working client: a fork keeps no thread but the one that forked.
_clients: weakref.WeakSet[Client] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_clients):
        client._restart_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _positive(name: str, value: Any, *, integer: bool = True, zero: bool = False) -> None:
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if value < 0 or (value == 0 and not zero):
        raise ValueError(f"{name} must be {'zero or more' if zero else 'more than zero'}")


class Client:
    """Sends events and profile updates to the platform from server code.

    >>> client = Client("WRITE_KEY", "https://cdp.example.com")
    >>> client.track("user-1", "order_completed", {"revenue": 42})
    >>> client.shutdown()  # also done at exit

    Calls return at once: they are checked (a bad argument raises TypeError or ValueError
    here), queued, and sent by a background thread in batches of `batch_size`, or after
    `flush_interval` seconds, gzipped. Requests that fail on the network, with a 429 or a 5xx,
    are retried with exponential backoff and jitter (honouring `Retry-After`), up to
    `max_retries` times; every event carries a message id, so the server stores a retried
    event once. When `max_queue_size` calls are waiting, new ones are dropped and counted
    (`stats().dropped`). Failures are logged on the `cdp_analytics` logger and passed to
    `on_error(error, payloads)`.

    With `sync_mode=True` each call is sent before it returns, in the calling thread, and a
    failure raises `APIError` (scripts, tests, serverless functions).

    With `capture_exceptions=True`, uncaught exceptions (of the main thread and of other
    threads) are sent as `server_error` events of `exception_distinct_id` (by default
    `server:<hostname>`) before Python's own handler runs.
    """

    def __init__(
        self,
        write_key: str,
        host: str,
        *,
        sync_mode: bool = False,
        batch_size: int = 100,
        flush_interval: float = 0.5,
        max_queue_size: int = 10_000,
        max_batch_bytes: int = 512 * 1024,
        gzip: bool = True,
        timeout: float = 10.0,
        max_retries: int = 8,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        on_error: ErrorCallback | None = None,
        capture_exceptions: bool = False,
        exception_distinct_id: str | None = None,
        shutdown_timeout: float = 30.0,
    ) -> None:
        if not isinstance(write_key, str) or not write_key.strip():
            raise ValueError("write_key must be a source's write key (shown in the admin)")
        _positive("batch_size", batch_size)
        if batch_size > MAX_BATCH_EVENTS:
            raise ValueError(f"batch_size is at most {MAX_BATCH_EVENTS} (the server's limit)")
        _positive("flush_interval", flush_interval, integer=False)
        _positive("max_queue_size", max_queue_size)
        _positive("max_batch_bytes", max_batch_bytes)
        if max_batch_bytes > MAX_BATCH_BYTES:
            raise ValueError(f"max_batch_bytes is at most {MAX_BATCH_BYTES} (the server's limit)")
        _positive("timeout", timeout, integer=False)
        _positive("max_retries", max_retries, zero=True)
        _positive("backoff_base", backoff_base, integer=False, zero=True)
        _positive("backoff_max", backoff_max, integer=False, zero=True)
        _positive("shutdown_timeout", shutdown_timeout, integer=False, zero=True)
        if on_error is not None and not callable(on_error):
            raise TypeError("on_error must be a function (error, payloads)")

        self.host = host
        self.sync_mode = sync_mode
        self.max_queue_size = max_queue_size
        self.shutdown_timeout = shutdown_timeout
        self.exception_distinct_id = messages.clean_distinct_id(
            exception_distinct_id or f"server:{socket.gethostname()}", "exception_distinct_id"
        )
        self._transport = Transport(
            write_key=write_key.strip(),
            host=host,
            timeout=timeout,
            gzip=gzip,
            retry=RetryPolicy(
                max_retries=max_retries, backoff_base=backoff_base, backoff_max=backoff_max
            ),
            user_agent=f"{LIBRARY_NAME}/{VERSION}",
        )
        self._counters = Counters()
        self._sender = Sender(
            transport=self._transport,
            counters=self._counters,
            batch_context=messages.to_json(
                {"library": {"name": LIBRARY_NAME, "version": VERSION}}, "context"
            ),
            max_batch_events=batch_size,
            max_batch_bytes=max_batch_bytes,
            on_error=on_error,
        )
        self.people = People(self)
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._pending = 0
        self._closed = False
        self._drop_logged = 0
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._consumer: Consumer | None = None
        if not sync_mode:
            self._consumer = Consumer(
                inbox=self._inbox,
                sender=self._sender,
                batch_size=batch_size,
                flush_interval=flush_interval,
                done=self._done,
            )
            self._consumer.start()
        _clients.add(self)
        self._hooks_installed = False
        if capture_exceptions:
            self._install_exception_hooks()
        atexit.register(self._at_exit)

    # -- calls -------------------------------------------------------------------------------

    def track(
        self,
        distinct_id: str,
        event_name: str,
        properties: Mapping[str, Any] | None = None,
        category: str = "custom",
        timestamp: datetime | None = None,
        *,
        context: Mapping[str, Any] | None = None,
        groups: Mapping[str, str] | None = None,
        session_id: str | None = None,
        message_id: str | None = None,
    ) -> str:
        """Record that `distinct_id` did `event_name`. Returns the event's message id.

        `timestamp` (timezone-aware) defaults to now; `context` holds what describes the
        request (`ip`, `user_agent`, `page`, `campaign`, `locale`...); `groups` names the
        groups the event belongs to (`{"company": "acme"}`); `session_id` a session of your
        own; `message_id` your own dedupe key (by default a new UUID)."""
        message = messages.track(
            distinct_id=distinct_id,
            event_name=event_name,
            properties=properties,
            category=category,
            timestamp=timestamp,
            context=context,
            message_id=message_id,
            session_id=session_id,
            groups=groups,
        )
        self._submit(message)
        return message.message_id or ""

    def identify(
        self,
        distinct_id: str,
        traits: Mapping[str, Any] | None = None,
        *,
        private_traits: Mapping[str, Any] | None = None,
        anonymous_id: str | None = None,
        timestamp: datetime | None = None,
        context: Mapping[str, Any] | None = None,
        message_id: str | None = None,
    ) -> str:
        """`distinct_id` is a known user: set their traits and, with `anonymous_id`, link the
        anonymous history (events before login) to their profile. `private_traits` are only
        shown to users allowed to see private traits. Returns the call's message id."""
        message = messages.identify(
            distinct_id=distinct_id,
            traits=traits,
            private_traits=private_traits,
            anonymous_id=anonymous_id,
            timestamp=timestamp,
            context=context,
            message_id=message_id,
        )
        self._submit(message)
        return message.message_id or ""

    def alias(
        self,
        distinct_id: str,
        alias: str,
        *,
        timestamp: datetime | None = None,
        message_id: str | None = None,
    ) -> str:
        """`alias` is another id of the person `distinct_id` (a CRM id, an old user id): both
        resolve to one profile. Returns the call's message id."""
        message = messages.alias(
            distinct_id=distinct_id, alias=alias, timestamp=timestamp, message_id=message_id
        )
        self._submit(message)
        return message.message_id or ""

    def group(
        self,
        distinct_id: str,
        group_key: str,
        group_id: str,
        properties: Mapping[str, Any] | None = None,
        *,
        action: str = "add",
    ) -> None:
        """Put `distinct_id` in the group `group_key`/`group_id` (e.g. "company", "acme") and
        set the group's `properties`. `action="set"` makes it their only group of that key,
        `action="remove"` takes them out."""
        membership = messages.group_membership(
            distinct_id=distinct_id, group_key=group_key, group_id=group_id, action=action
        )
        update = messages.group_properties(
            group_key=group_key, group_id=group_id, ops={"set": properties}
        )
        self._submit(membership)
        if update is not None:
            self._submit(update)

    def group_update(
        self,
        group_key: str,
        group_id: str,
        *,
        set: Mapping[str, Any] | None = None,
        set_once: Mapping[str, Any] | None = None,
        unset: Iterable[str] | None = None,
    ) -> None:
        """Change a group's properties without naming a member."""
        update = messages.group_properties(
            group_key=group_key,
            group_id=group_id,
            ops={"set": set, "set_once": set_once, "unset": unset},
        )
        if update is None:
            raise ValueError("no group property operation: pass set, set_once or unset")
        self._submit(update)

    def capture_exception(
        self,
        exception: BaseException | None = None,
        *,
        distinct_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> str:
        """Send an exception (by default the one being handled) as a `server_error` event,
        with its type, message and stack trace."""
        if exception is None:
            exception = sys.exc_info()[1]
        if exception is None:
            raise ValueError("no exception to capture: pass one, or call this in an except block")
        kind = type(exception)
        stack = "".join(traceback.format_exception(kind, exception, exception.__traceback__))
        details: dict[str, Any] = {
            "exception_type": f"{kind.__module__}.{kind.__qualname__}",
            "exception_message": str(exception)[:1000],
            "stacktrace": stack[-MAX_STACKTRACE:],
            "handled": True,
        }
        details.update(messages.clean_mapping(properties, "properties"))
        return self.track(
            distinct_id or self.exception_distinct_id,
            SERVER_ERROR_EVENT,
            details,
            category="error",
        )

    def for_user(self, distinct_id: str) -> UserContext:
        """A view of this client bound to one person: `user.track("signed_in")`."""
        return UserContext(self, messages.clean_distinct_id(distinct_id))

    # -- queue -------------------------------------------------------------------------------

    def _submit(self, message: Message) -> None:
        if self.sync_mode:
            if self._closed:
                raise ClientClosedError("this client was shut down: make a new one")
            self._sender.deliver([message], raise_errors=True)
            return
        with self._lock:
            if self._closed:
                raise ClientClosedError("this client was shut down: make a new one")
            if self._pending >= self.max_queue_size:
                self._counters.add(dropped=1)
                dropped = self._counters.dropped
                if dropped >= self._drop_logged * 10 or dropped == 1:
                    # 1, 10, 100, 1000...: visible without flooding the log.
                    self._drop_logged = max(dropped, 1)
                    logger.warning(
                        "queue full (%d calls): call dropped (%d dropped so far); "
                        "raise max_queue_size, or check that the server is reachable",
                        self.max_queue_size,
                        dropped,
                    )
                return
            self._pending += 1
            self._inbox.put(message)

    def _done(self, n: int) -> None:
        with self._settled:
            self._pending -= n
            if self._pending <= 0:
                self._settled.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued now and wait until it is delivered or given up on. Returns
        False if `timeout` seconds passed first."""
        if self._consumer is None:
            return True
        if threading.current_thread() is self._consumer:
            # Called from on_error, in the thread that would have to do the sending.
            raise RuntimeError("flush() can't be called from on_error: it would wait forever")
        self._inbox.put(FLUSH)
        with self._settled:
            return self._settled.wait_for(lambda: self._pending <= 0, timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush, then stop the background thread; later calls raise ClientClosedError. Runs
        at exit by itself. Returns False if calls were still unsent after `timeout` seconds
        (they are counted in stats().queued, and lost when the process ends)."""
        with self._lock:
            already = self._closed
            self._closed = True
        atexit.unregister(self._at_exit)
        self._remove_exception_hooks()
        if already:
            return self.stats().queued == 0
        flushed = self.flush(timeout)
        if self._consumer is not None:
            self._inbox.put(STOP)
            if flushed:
                self._consumer.join(timeout)
        self._transport.close()
        if not flushed:
            logger.error(
                "shut down with %d call(s) unsent after %s s",
                self.stats().queued,
                timeout,
            )
        return flushed

    def _restart_after_fork(self) -> None:
        """In a forked child: new locks (another thread may have held them at the fork), an
        empty queue (what was queued before the fork is the parent's to send), a connection of
        its own, and a consumer thread of its own."""
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._pending = 0
        self._inbox = queue.Queue()
        self._counters.lock = threading.Lock()
        self._transport.forget_connection()
        if self._consumer is not None and not self._closed:
            old = self._consumer
            self._consumer = Consumer(
                inbox=self._inbox,
                sender=self._sender,
                batch_size=old.batch_size,
                flush_interval=old.flush_interval,
                done=self._done,
            )
            self._consumer.start()

    def _at_exit(self) -> None:
        self.shutdown(self.shutdown_timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def stats(self) -> Stats:
        """Counts of what this client queued, delivered, dropped and failed so far."""
        with self._lock:
            queued = self._pending
        counters = self._counters
        with counters.lock:
            return Stats(
                queued=queued,
                delivered=counters.delivered,
                duplicates=counters.duplicates,
                rejected=counters.rejected,
                failed=counters.failed,
                dropped=counters.dropped,
                retries=self._transport.retries,
            )

    # -- uncaught exceptions -----------------------------------------------------------------

    def _install_exception_hooks(self) -> None:
        self._previous_excepthook = sys.excepthook
        self._previous_thread_hook = threading.excepthook
        sys.excepthook = self._excepthook
        threading.excepthook = self._thread_excepthook
        self._hooks_installed = True

    def _remove_exception_hooks(self) -> None:
        if not self._hooks_installed:
            return
        self._hooks_installed = False
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._previous_excepthook
        if threading.excepthook == self._thread_excepthook:
            threading.excepthook = self._previous_thread_hook

    def _capture_uncaught(self, exception: BaseException | None, where: str) -> None:
        if exception is None or isinstance(exception, KeyboardInterrupt | SystemExit):
            return
        try:
            self.capture_exception(exception, properties={"handled": False, "thread": where})
        except Exception:
            logger.exception("could not capture an uncaught exception")

    def _excepthook(
        self,
        kind: type[BaseException],
        exception: BaseException,
        tb: TracebackType | None,
    ) -> None:
        self._capture_uncaught(exception, threading.current_thread().name)
        self._previous_excepthook(kind, exception, tb)

    def _thread_excepthook(self, args: threading.ExceptHookArgs) -> None:
        self._capture_uncaught(args.exc_value, args.thread.name if args.thread else "")
        self._previous_thread_hook(args)


class People:
    """Profile trait operations with Mixpanel's semantics (`POST /api/people`), applied by the
    server at once: `client.people.set("user-1", {"plan": "pro"})`.

    The server applies several operations of one call in this order: set_once, set,
    increment, append, union, remove, unset. Private trait names (email, phone...) go to the
    profile's private traits."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def update(
        self,
        distinct_id: str,
        *,
        set: Mapping[str, Any] | None = None,
        set_once: Mapping[str, Any] | None = None,
        increment: Mapping[str, float] | None = None,
        append: Mapping[str, Any] | None = None,
        union: Mapping[str, Iterable[Any]] | None = None,
        remove: Mapping[str, Any] | None = None,
        unset: Iterable[str] | None = None,
        delete: bool = False,
        timestamp: datetime | None = None,
    ) -> None:
        """Several operations in one call (one request)."""
        if not isinstance(delete, bool):
            raise TypeError("delete must be True or False")
        ops = {
            "set": set,
            "set_once": set_once,
            "increment": increment,
            "append": append,
            "union": _lists(union),
            "remove": remove,
            "unset": unset,
        }
        self._client._submit(
            messages.people(distinct_id=distinct_id, ops=ops, delete=delete, timestamp=timestamp)
        )

    def set(self, distinct_id: str, traits: Mapping[str, Any]) -> None:
        """Set traits (the last write wins)."""
        self.update(distinct_id, set=_required(traits, "traits"))

    def set_once(self, distinct_id: str, traits: Mapping[str, Any]) -> None:
        """Set traits the profile does not have yet (a first touch, a signup source)."""
        self.update(distinct_id, set_once=_required(traits, "traits"))

    def increment(self, distinct_id: str, amounts: Mapping[str, float]) -> None:
        """Add to numeric traits (a missing trait counts from 0): {"logins": 1}."""
        self.update(distinct_id, increment=_required(amounts, "amounts"))

    def append(self, distinct_id: str, values: Mapping[str, Any]) -> None:
        """Append one value to list traits: {"purchases": "sku-1"}."""
        self.update(distinct_id, append=_required(values, "values"))

    def union(self, distinct_id: str, values: Mapping[str, Iterable[Any]]) -> None:
        """Add the values a list trait does not hold yet: {"tags": ["beta", "vip"]}."""
        self.update(distinct_id, union=_required(values, "values"))

    def remove(self, distinct_id: str, values: Mapping[str, Any]) -> None:
        """Remove a value (or a list of values) from list traits."""
        self.update(distinct_id, remove=_required(values, "values"))

    def unset(self, distinct_id: str, names: Iterable[str]) -> None:
        """Remove traits by name."""
        if isinstance(names, str):
            raise TypeError("names must be a list of trait names, e.g. ['plan']")
        if not names:
            raise ValueError("names must name at least one trait")
        self.update(distinct_id, unset=names)

    def delete(self, distinct_id: str) -> None:
        """Delete the person's profile (GDPR erasure of the profile; events stay)."""
        self.update(distinct_id, delete=True)


def _required(values: Any, argument: str) -> Any:
    if values is None or (isinstance(values, Mapping) and not values):
        raise ValueError(f"{argument} must name at least one trait")
    return values


def _lists(values: Mapping[str, Iterable[Any]] | None) -> dict[str, list[Any]] | None:
    if values is None:
        return None
    checked = messages.clean_mapping(values, "union")
    out = {}
    for key, items in checked.items():
        if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
            raise TypeError(f"union[{key!r}] must be a list of values, not {type(items).__name__}")
        out[key] = list(items)
    return out


class UserPeople:
    """People operations on one person (`user.people.increment({"logins": 1})`)."""

    def __init__(self, people: People, distinct_id: str) -> None:
        self._people = people
        self._id = distinct_id

    def update(self, **operations: Any) -> None:
        """Several operations in one call (see People.update)."""
        self._people.update(self._id, **operations)

    def set(self, traits: Mapping[str, Any]) -> None:
        self._people.set(self._id, traits)

    def set_once(self, traits: Mapping[str, Any]) -> None:
        self._people.set_once(self._id, traits)

    def increment(self, amounts: Mapping[str, float]) -> None:
        self._people.increment(self._id, amounts)

    def append(self, values: Mapping[str, Any]) -> None:
        self._people.append(self._id, values)

    def union(self, values: Mapping[str, Iterable[Any]]) -> None:
        self._people.union(self._id, values)

    def remove(self, values: Mapping[str, Any]) -> None:
        self._people.remove(self._id, values)

    def unset(self, names: Iterable[str]) -> None:
        self._people.unset(self._id, names)

    def delete(self) -> None:
        self._people.delete(self._id)


class UserContext:
    """The client's calls for one person, so that request handlers need not pass the id
    around: `user = client.for_user(request.user.id); user.track("report_exported")`."""

    def __init__(self, client: Client, distinct_id: str) -> None:
        self.client = client
        self.distinct_id = distinct_id
        self.people = UserPeople(client.people, distinct_id)

    def track(
        self,
        event_name: str,
        properties: Mapping[str, Any] | None = None,
        category: str = "custom",
        timestamp: datetime | None = None,
        **options: Any,
    ) -> str:
        return self.client.track(
            self.distinct_id, event_name, properties, category, timestamp, **options
        )

    def identify(self, traits: Mapping[str, Any] | None = None, **options: Any) -> str:
        return self.client.identify(self.distinct_id, traits, **options)

    def alias(self, alias: str, **options: Any) -> str:
        return self.client.alias(self.distinct_id, alias, **options)

    def group(
        self,
        group_key: str,
        group_id: str,
        properties: Mapping[str, Any] | None = None,
        *,
        action: str = "add",
    ) -> None:
        self.client.group(self.distinct_id, group_key, group_id, properties, action=action)

    def capture_exception(self, exception: BaseException | None = None, **options: Any) -> str:
        return self.client.capture_exception(
            exception if exception is not None else sys.exc_info()[1],
            distinct_id=self.distinct_id,
            **options,
        )
