"""Per-source rate limits: events per second, counted in the shared cache (Redis in production).

The default is the source's `rate_limit_per_second` (2000 unless changed in the admin or the
API; 0 turns it off). With Redis the count is one pipelined INCRBY + EXPIRE: one round trip per
request."""

from __future__ import annotations

import logging
import time

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

from apps.sources.models import EventSource

logger = logging.getLogger(__name__)
WINDOW_TTL_SECONDS = 3


def rate_limit_allows(source: EventSource, n_events: int) -> bool:
    """Count n_events against the source's current one-second window; False when over."""
    limit = source.rate_limit_per_second
    if not limit:
        return True
    key = f"cdp:rate:{source.pk}:{int(time.time())}"
    try:
        count = _count(key, n_events)
    except Exception:  # the cache is down: keep accepting events rather than lose them
        logger.warning("Rate-limit cache unavailable; source %s not limited", source.pk)
        return True
    return count <= limit


def _count(key: str, n_events: int) -> int:
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        full_key = backend.make_and_validate_key(key)
        client = backend._cache.get_client(full_key, write=True)
        pipe = client.pipeline(transaction=False)
        pipe.incrby(full_key, n_events)
        pipe.expire(full_key, WINDOW_TTL_SECONDS)
        count, _ = pipe.execute()
        return int(count)
    try:
        cache.add(key, 0, timeout=WINDOW_TTL_SECONDS)
        return int(cache.incr(key, n_events))
    except ValueError:  # the key expired between add and incr
        return n_events
