"""The shared cache on Redis (cdp/cache.py): Django's backend, one client per pool."""

from __future__ import annotations

import threading

import pytest
from django.core.cache import caches

from cdp.cache import RedisCache


@pytest.fixture
def redis_cache() -> RedisCache:
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        pytest.skip("needs Redis (set REDIS_URL)")
    return backend


def test_cache_calls_share_one_client_per_pool_and_still_work(redis_cache: RedisCache) -> None:
    client = redis_cache._cache.get_client(write=True)
    assert redis_cache._cache.get_client("any key", write=True) is client
    assert redis_cache._cache.get_client(write=False) is client  # one server: one pool
    redis_cache.set("cdp-test:a", {"n": 1}, timeout=30)
    assert redis_cache.get("cdp-test:a") == {"n": 1}
    redis_cache.delete("cdp-test:n")
    assert redis_cache.add("cdp-test:n", 0, timeout=30)
    assert redis_cache.incr("cdp-test:n", 2) == 2
    redis_cache.delete_many(["cdp-test:a", "cdp-test:n"])
    assert redis_cache.get("cdp-test:a") is None


def test_each_thread_keeps_its_own_cache_and_pool(redis_cache: RedisCache) -> None:
    """As with Django's backend: a cache object per thread, so a client is never shared by
    two threads' pools."""
    seen: list[object] = []

    def other_thread() -> None:
        seen.append(caches["default"]._cache.get_client(write=True))  # type: ignore[attr-defined]

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    [theirs] = seen
    assert theirs is not redis_cache._cache.get_client(write=True)
