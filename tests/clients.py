"""Clients the tests talk to the service with: the tracking endpoints as an SDK would (write
key), the management API as a user with a token, and Celery's broker client pools."""

from __future__ import annotations

import base64
import gzip
from typing import Any

import orjson
from django.test import Client, TestCase
from kombu import pools as kombu_pools

from apps.sources.models import EventSource
from cdp.celery import app as celery_app


def basic_auth(write_key: str) -> str:
    """The `Authorization` header value SDKs send: the write key as the Basic username."""
    token = base64.b64encode(f"{write_key}:".encode()).decode()
    return f"Basic {token}"


class TrackingClient:
    """Posts to the tracking endpoints as an SDK would."""

    def __init__(self, client: Client, write_key: str) -> None:
        self.client = client
        self.write_key = write_key

    def post(
        self,
        payload: Any,
        *,
        path: str = "/api/track",
        raw: bytes | None = None,
        gzip_body: bool = False,
        content_type: str = "application/json",
        auth: str = "basic",
        **headers: str,
    ) -> Any:
        body = raw if raw is not None else orjson.dumps(payload)
        if gzip_body:
            body = gzip.compress(body)
            headers["HTTP_CONTENT_ENCODING"] = "gzip"
        if auth == "basic":
            headers["HTTP_AUTHORIZATION"] = basic_auth(self.write_key)
        elif auth == "header":
            headers["HTTP_X_WRITE_KEY"] = self.write_key
        # Run on_commit callbacks (processing) as a real commit would.
        with TestCase.captureOnCommitCallbacks(execute=True):
            return self.client.generic("POST", path, body, content_type=content_type, **headers)


def tracking_client_for(source: EventSource) -> TrackingClient:
    """A tracking client sending with `source`'s write key."""
    return TrackingClient(Client(), source.write_key)


def broker_pools_reset() -> None:
    """Close the app's broker connection and producer pools and forget them, so the next task
    sent opens new ones (to the broker configured then).

    kombu keeps its pools in process-wide registries keyed by broker URL, and a closed pool
    stays there closed: a worker's shutdown (or a test switching brokers) would leave every
    later test unable to send a task, even in-process ("Acquire on closed pool")."""
    kombu_pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def broker_pools_closed() -> bool:
    pool = celery_app._pool
    producers = celery_app.amqp._producer_pool
    return bool(
        (pool is not None and pool._closed)
        or (producers is not None and (producers._closed or producers.connections._closed))
    )
