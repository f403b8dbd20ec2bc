"""Shared fixtures: sources made through the services, a tracking client, Celery modes."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client, TestCase
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from kombu import pools as kombu_pools
from rest_framework.test import APIClient

from apps.events.dispatch import dispatcher_flush
from apps.sources import selectors as source_selectors
from apps.sources import services as source_services
from apps.sources.models import EventSource
from cdp.celery import app as celery_app
from tests.users import token_client

# Database round trips make examples slow and uneven on a shared machine: no per-example
# deadline, and a bounded number of examples so the suite stays within CI's time.
hypothesis_settings.register_profile(
    "cdp",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
hypothesis_settings.load_profile("cdp")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from django.conf import settings

    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(skip_pg)


def broker_pools_reset() -> None:
    """Close the app's broker connection and producer pools and forget them, so the next task
    sent opens new ones (to the broker configured then).

    kombu keeps its pools in process-wide registries keyed by broker URL, and a closed pool
    stays there closed: a worker's shutdown (or a test switching brokers) would leave every
    later test unable to send a task, even in-process ("Acquire on closed pool")."""
    kombu_pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def _broker_pools_closed() -> bool:
    pool = celery_app._pool
    producers = celery_app.amqp._producer_pool
    return bool(
        (pool is not None and pool._closed)
        or (producers is not None and (producers._closed or producers.connections._closed))
    )


@pytest.fixture(autouse=True)
def _isolated_state() -> Iterator[None]:
    """Each test starts with an empty cache and, by default, tasks run in-process."""
    if _broker_pools_closed():
        broker_pools_reset()
    conf = celery_app.conf
    saved = (conf.task_always_eager, conf.task_eager_propagates)
    conf.task_always_eager = True
    conf.task_eager_propagates = True
    cache.clear()
    source_selectors.source_cache_clear()
    yield
    # Ids a test left with the background dispatcher are published now, not in a later test.
    dispatcher_flush()
    conf.task_always_eager, conf.task_eager_propagates = saved
    source_selectors.source_cache_clear()


@pytest.fixture
def source(db: None) -> EventSource:
    return source_services.source_create(name="Website")


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
            token = base64.b64encode(f"{self.write_key}:".encode()).decode()
            headers["HTTP_AUTHORIZATION"] = f"Basic {token}"
        elif auth == "header":
            headers["HTTP_X_WRITE_KEY"] = self.write_key
        # Run on_commit callbacks (processing) as a real commit would.
        with TestCase.captureOnCommitCallbacks(execute=True):
            return self.client.generic("POST", path, body, content_type=content_type, **headers)


@pytest.fixture
def tracker(source: EventSource) -> TrackingClient:
    return TrackingClient(Client(), source.write_key)


@pytest.fixture
def admin_user(db: None, django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser(username="root", password="pw-123456!")


@pytest.fixture
def api_client(admin_user: Any) -> APIClient:
    return token_client(admin_user)


@pytest.fixture
def celery_worker(transactional_db: None) -> Iterator[Any]:
    """A real Celery worker, in a thread of this process, consuming the configured broker
    (Redis when REDIS_URL is set, else Celery's in-memory transport). Tests using it see
    committed data only, hence the transactional database."""
    from celery.contrib.testing.worker import start_worker

    conf = celery_app.conf
    conf.task_always_eager = False
    with start_worker(
        celery_app,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        queues=["default", "processing", "segments", "workflows"],
        shutdown_timeout=30,
    ) as worker:
        yield worker
    broker_pools_reset()


def on_postgres() -> bool:
    return connection.vendor == "postgresql"
