"""cdp/shared_version.py: a version token that processes read at most once per interval."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache

from cdp.shared_version import SharedVersion


class CountingCache:
    """The real cache, counting the reads (the point of the token is to make few)."""

    def __init__(self) -> None:
        self.reads = 0

    def get(self, key: str) -> Any:
        self.reads += 1
        return cache.get(key)

    def add(self, key: str, value: Any, timeout: Any = None) -> bool:
        return cache.add(key, value, timeout=timeout)

    def set(self, key: str, value: Any, timeout: Any = None) -> None:
        cache.set(key, value, timeout=timeout)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> CountingCache:
    counter = CountingCache()
    monkeypatch.setattr("cdp.shared_version.cache", counter)
    return counter


def test_the_token_is_read_once_per_interval_not_per_call(counting, settings):
    settings.CDP_SHARED_VERSION_CHECK_SECONDS = 3600
    version = SharedVersion("test:version:a")
    first = version.token()
    assert first is not None
    counting.reads = 0
    assert all(version.token() == first for _ in range(100))
    assert counting.reads == 0


def test_another_processs_change_is_seen_once_the_interval_has_passed(counting, settings):
    settings.CDP_SHARED_VERSION_CHECK_SECONDS = 3600
    version = SharedVersion("test:version:b")
    before = version.token()
    cache.set(version.key, "published elsewhere")
    assert version.token() == before  # trusted within the interval
    settings.CDP_SHARED_VERSION_CHECK_SECONDS = 0
    assert version.token() != before


@pytest.mark.django_db
def test_a_local_change_is_seen_at_once_and_published_on_commit(
    settings, django_capture_on_commit_callbacks
):
    settings.CDP_SHARED_VERSION_CHECK_SECONDS = 3600
    version = SharedVersion("test:version:c")
    other_process = SharedVersion("test:version:c")
    before, seen_elsewhere = version.token(), other_process.token()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        version.changed()
        inside = version.token()
        assert inside != before  # this process, inside its own transaction
        assert cache.get(version.key) == before.rsplit(".", 1)[0]  # not published yet
    for callback in callbacks:
        callback()
    assert cache.get(version.key) != before.rsplit(".", 1)[0]
    settings.CDP_SHARED_VERSION_CHECK_SECONDS = 0
    assert other_process.token() != seen_elsewhere


def test_an_unreachable_cache_gives_no_token_so_callers_reload(monkeypatch, settings):
    settings.CDP_SHARED_VERSION_CHECK_SECONDS = 3600

    class Down:
        def get(self, key: str) -> Any:
            raise ConnectionError("redis is down")

    monkeypatch.setattr("cdp.shared_version.cache", Down())
    version = SharedVersion("test:version:d")
    assert version.token() is None
    assert version.token() is None
