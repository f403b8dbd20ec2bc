"""A version token in the shared cache, for things each process keeps in memory.

Hot paths keep a few small tables in process memory (sources by write key, suppression
tombstones, compiled compliance rules, workflow rules). When one changes, the writer calls
`changed()` and every process reloads its copy at its next use after it has checked the token.
A process reads the token from the shared cache at most every CDP_SHARED_VERSION_CHECK_SECONDS,
never once per request: a change reaches the other processes within about that delay, and the
writing process at once.

    RULES = SharedVersion("workflows:rules:version")

    def rules() -> Table:
        token = RULES.token()
        if token is None or token != _memo.token:  # None: the cache is down, read each time
            _memo.token, _memo.table = token, _load()
        return _memo.table

    def rule_save(...):
        ...
        RULES.changed()
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)


_instances: weakref.WeakSet[SharedVersion] = weakref.WeakSet()


class SharedVersion:
    def __init__(self, key: str) -> None:
        self.key = key
        _instances.add(self)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._checked_at = float("-inf")
        # Bumped by every local change, and part of the token: a change made in this process
        # is seen here at once, before the shared token moves (the transaction may be open).
        self._local = 0

    def token(self) -> str | None:
        """The current token: this process's copy while it is fresher than the check interval,
        else read from the shared cache (made there if absent). None while the cache can't be
        read: the caller reloads from the database each time, so nothing stale is served."""
        now = time.monotonic()
        if self._token is not None and now - self._checked_at < _interval():
            return self._token
        with self._lock:
            if self._token is not None and now - self._checked_at < _interval():
                return self._token
            try:
                value = cache.get(self.key)
                if value is None:
                    # add: two processes racing here agree on one value.
                    cache.add(self.key, uuid.uuid4().hex, timeout=None)
                    value = cache.get(self.key)
            except Exception as exc:  # redis-py and the cache backends raise many kinds
                logger.warning("Shared cache unavailable for %s (%s)", self.key, exc)
                self._token, self._checked_at = None, now
                return None
            self._token = None if value is None else f"{value}.{self._local}"
            self._checked_at = now
            return self._token

    def changed(self) -> None:
        """What the token guards changed: this process forgets its token now (so its next read
        sees the change, even inside the writing transaction), and a new token is published
        when the transaction commits (at once outside one), for the other processes."""
        with self._lock:
            self._local += 1
        self.forget()

        def publish() -> None:
            try:
                cache.set(self.key, uuid.uuid4().hex, timeout=None)
            except Exception as exc:  # the others see it when the cache is back
                logger.warning("Could not publish a change of %s to the cache (%s)", self.key, exc)
            self.forget()

        transaction.on_commit(publish)

    def forget(self) -> None:
        """Read the shared token again at the next use (tests, and after a local change)."""
        with self._lock:
            self._token, self._checked_at = None, float("-inf")


def forget_all() -> None:
    """Every version reads the shared cache again at its next use (tests flush the cache)."""
    for version in list(_instances):
        version.forget()


def _interval() -> float:
    return float(settings.CDP_SHARED_VERSION_CHECK_SECONDS)
