"""Reads on event sources, with a per-process cache for the write-key lookup."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings

from apps.sources.models import EventSource
from cdp.shared_version import SharedVersion

# write_key -> (expires_at, source or None). Hot path: every tracking request looks its key up.
_by_write_key: dict[str, tuple[float, EventSource | None]] = {}
_MAX_CACHED = 10_000
# A change to any source (admin, API, rotation) moves this version; each process drops its
# cached sources when it sees it move (within CDP_SHARED_VERSION_CHECK_SECONDS). With the cache
# down, entries still expire after CDP_SOURCE_CACHE_SECONDS.
SOURCES_VERSION = SharedVersion("cdp:sources:version")
_seen: dict[str, str | None] = {"token": None}


def source_get_for_write_key(
    write_key: str, lookup: Callable[[], EventSource | None] | None = None
) -> EventSource | None:
    """The enabled or disabled source with this key, or None; cached (see above). `lookup`
    reads the source some other way (by id) under the same cache and invalidation."""
    token = SOURCES_VERSION.token()
    if token != _seen["token"]:
        _by_write_key.clear()
        _seen["token"] = token
    now = time.monotonic()
    cached = _by_write_key.get(write_key)
    if cached is not None and cached[0] > now:
        return cached[1]
    if lookup is not None:
        source = lookup()
    else:
        source = EventSource.objects.filter(write_key=write_key).first()
    if len(_by_write_key) >= _MAX_CACHED:
        _by_write_key.clear()
    _by_write_key[write_key] = (now + settings.CDP_SOURCE_CACHE_SECONDS, source)
    return source


def source_get_for_id(source_id: str) -> EventSource | None:
    return EventSource.objects.filter(pk=source_id).first()


def source_get_for_id_cached(source_id: str) -> EventSource | None:
    """source_get_for_id for a hot path (the webhook bridge), cached as write keys are."""
    return source_get_for_write_key(f"id:{source_id}", lookup=lambda: source_get_for_id(source_id))


def source_cache_clear(write_key: str | None = None) -> None:
    if write_key is None:
        _by_write_key.clear()
        SOURCES_VERSION.forget()
    else:
        _by_write_key.pop(write_key, None)
        # Entries cached by id hold the same source: drop them too.
        for key in [k for k, (_, s) in _by_write_key.items() if s and s.write_key == write_key]:
            _by_write_key.pop(key, None)


def source_list() -> list[EventSource]:
    return list(EventSource.objects.all())
