"""Reads on event sources, with a short per-process cache for the write-key lookup."""

from __future__ import annotations

import time

from django.conf import settings

from apps.sources.models import EventSource

# write_key -> (expires_at, source or None). Hot path: every tracking request looks its key up.
_by_write_key: dict[str, tuple[float, EventSource | None]] = {}
_MAX_CACHED = 10_000


def source_get_for_write_key(write_key: str) -> EventSource | None:
    """The enabled or disabled source with this key, or None; cached for a few seconds."""
    now = time.monotonic()
    cached = _by_write_key.get(write_key)
    if cached is not None and cached[0] > now:
        return cached[1]
    source = EventSource.objects.filter(write_key=write_key).first()
    if len(_by_write_key) >= _MAX_CACHED:
        _by_write_key.clear()
    _by_write_key[write_key] = (now + settings.CDP_SOURCE_CACHE_SECONDS, source)
    return source


def source_get_for_id(source_id: str) -> EventSource | None:
    return EventSource.objects.filter(pk=source_id).first()


def source_cache_clear(write_key: str | None = None) -> None:
    if write_key is None:
        _by_write_key.clear()
    else:
        _by_write_key.pop(write_key, None)


def source_list() -> list[EventSource]:
    return list(EventSource.objects.all())
