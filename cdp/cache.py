"""The shared cache on Redis: Django's backend, with one redis client per connection pool.

Django's Redis cache builds a new `redis.Redis` for every call (get, set, incr...), and
building one (its table of reply callbacks) costs redis-py about 0.1 ms of CPU: more than many
of the calls themselves. A client is only a handle on its pool and is safe to share, so each
pool gets one here, made at its first use. Nothing else changes: the same pools (one per
server, per thread's cache object), serializer and options."""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        client = self._clients.get(id(pool))  # pools live as long as this object
        if client is None:
            make = self._client  # type: ignore[attr-defined]
            client = self._clients[id(pool)] = make(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
