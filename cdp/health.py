"""Health checks for load balancers and operators: /healthz (liveness, no I/O) and /readyz
(readiness: the database, Redis and how many tasks wait in each worker queue)."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse

from cdp.outage import PoolTimeout

logger = logging.getLogger(__name__)

# The queues workers consume (CELERY_TASK_ROUTES, `make worker`).
QUEUES = ("default", "processing", "segments", "workflows")
# kombu's Redis transport keeps a queue's priority levels in separate lists: "name",
# "name\x06\x163", "name\x06\x166", "name\x06\x169".
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers (no database access)."""
    return JsonResponse({"status": "ok"})


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except (DatabaseError, PoolTimeout):
        # The reason (hosts, ports) is for the logs, not for anonymous callers.
        logger.exception("readyz: the database is unavailable")
        return "unavailable"
    return "ok"


def _redis() -> tuple[str, dict[str, int] | None]:
    if not settings.REDIS_URL:
        return "not configured", None
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
        )
        with client.pipeline(transaction=False) as pipe:
            for queue in QUEUES:
                for suffix in _PRIORITY_SUFFIXES:
                    pipe.llen(queue + suffix)
            lengths = pipe.execute()
    except redis.RedisError:
        logger.exception("readyz: Redis is unavailable")
        return "unavailable", None
    per_queue = len(_PRIORITY_SUFFIXES)
    depths = {
        queue: int(sum(lengths[i * per_queue : (i + 1) * per_queue]))
        for i, queue in enumerate(QUEUES)
    }
    return "ok", depths


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the database (and Redis, when configured) answer, else 503; with
    the number of tasks waiting in each worker queue (Redis only)."""
    database = _database()
    redis_status, queues = _redis()
    ready = database == "ok" and redis_status != "unavailable"
    body: dict[str, Any] = {
        "status": "ok" if ready else "unavailable",
        "database": database,
        "redis": redis_status,
    }
    if queues is not None:
        body["queues"] = queues
    response = JsonResponse(body, status=200 if ready else 503)
    if not ready:
        response["Retry-After"] = str(settings.CDP_RETRY_AFTER_SECONDS)
    return response
