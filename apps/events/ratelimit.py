"""Per-source rate limits: events per second, counted in the shared cache (Redis in production)."""

from __future__ import annotations

import logging
import time

from django.core.cache import cache

from apps.sources.models import EventSource

logger = logging.getLogger(__name__)


def rate_limit_allows(source: EventSource, n_events: int) -> bool:
    """Count n_events against the source's current one-second window; False when over."""
    limit = source.rate_limit_per_second
    if not limit:
        return True
    key = f"cdp:rate:{source.pk}:{int(time.time())}"
    try:
        cache.add(key, 0, timeout=3)
        count = cache.incr(key, n_events)
    except ValueError:  # the key expired between add and incr
        count = n_events
    except Exception:  # the cache is down: keep accepting events rather than lose them
        logger.warning("Rate-limit cache unavailable; source %s not limited", source.pk)
        return True
    return count <= limit
