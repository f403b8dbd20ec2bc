"""Shared fixtures: sources and users (tests/factories.py), the tracking and API clients
(tests/clients.py), Celery modes and a real worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

from apps.events.dispatch import dispatcher_flush
from apps.events.groupcommit import group_writer
from apps.events.ratelimit import rate_limit_forget
from apps.sources import selectors as source_selectors
from apps.sources.models import EventSource
from apps.workflows.services.inputs import version_graph
from cdp.celery import app as celery_app
from cdp.queues import queue_names
from cdp.shared_version import forget_all
from tests.clients import TrackingClient, broker_pools_closed, broker_pools_reset
from tests.factories import source_make, user_make
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


@pytest.fixture(autouse=True)
def _isolated_state() -> Iterator[None]:
    """Each test starts with an empty cache and, by default, tasks run in-process."""
    if broker_pools_closed():
        broker_pools_reset()
    conf = celery_app.conf
    saved = (conf.task_always_eager, conf.task_eager_propagates)
    conf.task_always_eager = True
    conf.task_eager_propagates = True
    cache.clear()
    rate_limit_forget()  # this process's counts of the shared ones just cleared
    forget_all()  # the versions held from the previous test's cache
    # Compiled graphs are kept per process by version id, and a rolled-back test gives its
    # ids to the next one on SQLite: a graph of the previous test must not be found by id.
    version_graph.cache_clear()
    source_selectors.source_cache_clear()
    yield
    # Ids a test left with the background dispatcher are published now, not in a later test.
    dispatcher_flush()
    conf.task_always_eager, conf.task_eager_propagates = saved
    source_selectors.source_cache_clear()
    # The group-commit writer's connection: none left open when the test database is dropped.
    group_writer().close()


@pytest.fixture
def source(db: None) -> EventSource:
    return source_make(name="Website")


@pytest.fixture
def tracker(source: EventSource) -> TrackingClient:
    return TrackingClient(Client(), source.write_key)


@pytest.fixture
def admin_user(db: None) -> Any:
    return user_make("root", superuser=True)


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
        queues=queue_names(),
        shutdown_timeout=30,
    ) as worker:
        yield worker
    broker_pools_reset()
