"""Merges under concurrency, against PostgreSQL with real threads (one connection each):
two workers identifying the same person at once end with one profile and no lost identity,
and chains of merges stay consistent."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from django.db import connections

from apps.events import services as event_services
from apps.events.models import Event
from apps.pipeline import services as pipeline_services
from apps.profiles import services
from apps.profiles.models import IdentificationPoint, Identity, Profile, ProfileMerge
from tests.factories import profile_of

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _in_threads(jobs: list[Callable[[], object]]) -> list[object]:
    """Run the jobs at the same moment, each in its own thread and database connection."""
    barrier = threading.Barrier(len(jobs))
    results: list[object] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(index: int, job: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = job()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    assert not errors, errors
    return results


@pytest.fixture
def store(tracker, monkeypatch):
    """Store events through the API without processing them, so the test decides who
    processes what, when. Returns the stored events' ids."""
    monkeypatch.setattr(event_services, "events_dispatch", lambda ids, **options: None)
    seen: set[int] = set()

    def stored(payload, path="/api/track"):
        response = tracker.post(payload, path=path)
        assert response.status_code == 200, response.content
        new = list(Event.objects.exclude(id__in=seen).order_by("id").values_list("id", flat=True))
        seen.update(new)
        return new

    return stored


def _process(ids):
    return lambda: pipeline_services.events_process(event_ids=ids)


def test_two_workers_identifying_the_same_person_at_once(store):
    people = 8
    jobs = []
    for n in range(people):
        anon, user = f"anon-{n}", f"user-{n}"
        first = store({"batch": [{"event_name": "page_view", "distinct_id": anon}] * 1})
        first += store({"distinct_id": user, "anonymous_id": anon}, path="/api/identify")
        second = store(
            {"batch": [{"event_name": "clicked", "distinct_id": anon, "message_id": f"c{n}"}]}
        )
        second += store(
            {"distinct_id": user, "anonymous_id": anon, "message_id": f"again-{n}"},
            path="/api/identify",
        )
        second += store({"event_name": "bought", "distinct_id": user})
        jobs += [_process(first), _process(second)]

    _in_threads(jobs)

    assert Event.objects.filter(processed_at__isnull=True).count() == 0
    assert Profile.objects.filter(merged_into__isnull=True).count() == people
    for n in range(people):
        profile = profile_of(f"user-{n}")
        assert profile_of(f"anon-{n}") == profile
        assert profile.identified
        assert set(profile.identities.values_list("distinct_id", flat=True)) == {
            f"anon-{n}",
            f"user-{n}",
        }
        assert profile.event_count == 5


def test_identify_merges_racing_with_events_of_both_ids(store):
    """anon-X and user-1 both have profiles; two identify calls and more events of both ids are
    processed by four workers at once."""
    store({"event_name": "page_view", "distinct_id": "anon-x"})
    store({"event_name": "page_view", "distinct_id": "user-1"})
    _in_threads([_process(list(Event.objects.values_list("id", flat=True)))])
    batches = [
        store({"distinct_id": "user-1", "anonymous_id": "anon-x"}, path="/api/identify"),
        store(
            {"distinct_id": "user-1", "anonymous_id": "anon-x", "message_id": "m2"},
            path="/api/identify",
        ),
        store({"batch": [{"event_name": "a", "distinct_id": "anon-x"}] * 3}),
        store({"batch": [{"event_name": "b", "distinct_id": "user-1"}] * 3}),
    ]

    _in_threads([_process(ids) for ids in batches])

    profile = profile_of("user-1")
    assert profile_of("anon-x") == profile
    assert Profile.objects.filter(merged_into__isnull=True).count() == 1
    assert profile.event_count == Event.objects.count() == 10
    assert ProfileMerge.objects.count() == 1
    assert set(Identity.objects.values_list("distinct_id", flat=True)) == {"anon-x", "user-1"}


def test_two_devices_sending_the_same_email_at_once(store):
    IdentificationPoint.objects.create(name="email", field="properties.email", kind="email")
    batches = [
        store(
            {"event_name": "signup", "distinct_id": f"dev-{n}", "properties": {"email": "a@x.io"}}
        )
        for n in range(4)
    ]

    _in_threads([_process(ids) for ids in batches])

    assert Event.objects.filter(processed_at__isnull=True).count() == 0
    profile = profile_of("email:a@x.io")
    assert {profile_of(f"dev-{n}") for n in range(4)} == {profile}
    assert profile.event_count == 4


def _profiles(tracker, count):
    for n in range(count):
        response = tracker.post({"event_name": "page_view", "distinct_id": f"p-{n}"})
        assert response.status_code == 200
    return [profile_of(f"p-{n}") for n in range(count)]


def _merge(survivor, merged):
    def job():
        # A transient deadlock between two merges is retried, as the Celery task would.
        for attempt in range(5):
            try:
                return services.profile_merge(survivor=survivor, merged=merged, trigger="api")
            except Exception as exc:
                if "deadlock" not in str(exc) or attempt == 4:
                    raise
                time.sleep(0.05)
        return None

    return job


def _assert_one_person(count):
    live = Profile.objects.filter(merged_into__isnull=True)
    assert live.count() == 1
    survivor = live.get()
    assert Identity.objects.exclude(profile=survivor).count() == 0
    assert Identity.objects.count() == count
    assert survivor.event_count == count
    for profile in Profile.objects.exclude(pk=survivor.pk):
        assert profile.merged_into_id == survivor.pk  # chains are flat: one hop
    return survivor


def test_a_chain_of_merges_under_concurrency_stays_consistent(tracker):
    for _ in range(3):
        Profile.objects.all().delete()
        Identity.objects.all().delete()
        Event.objects.all().delete()
        p = _profiles(tracker, 6)

        # p0 -> p1 -> p2 -> p3 -> p4 -> p5, every link merged at the same moment.
        _in_threads([_merge(p[i + 1], p[i]) for i in range(5)])

        survivor = _assert_one_person(6)
        assert survivor.pk == p[5].pk
        assert ProfileMerge.objects.count() == 5


def test_the_same_merge_twice_at_once_happens_once(tracker):
    a, b = _profiles(tracker, 2)

    results = _in_threads([_merge(a, b), _merge(a, b), _merge(b, a)])

    assert sum(r is not None for r in results) == 1
    assert ProfileMerge.objects.count() == 1
    _assert_one_person(2)


@pytest.mark.worker
def test_real_workers_identifying_the_same_person(tracker, celery_worker):
    """Through the whole pipeline: the API commits, a Celery worker pool processes."""
    for n in range(4):
        tracker.post({"event_name": "page_view", "distinct_id": f"anon-{n}"})
        tracker.post(
            {"distinct_id": f"user-{n}", "anonymous_id": f"anon-{n}"}, path="/api/identify"
        )
        tracker.post(
            {"distinct_id": f"user-{n}", "anonymous_id": f"anon-{n}", "message_id": f"x{n}"},
            path="/api/identify",
        )
        tracker.post({"event_name": "bought", "distinct_id": f"anon-{n}"})

    deadline = time.monotonic() + 60
    while Event.objects.filter(processed_at__isnull=True).exists():
        assert time.monotonic() < deadline, "the worker did not process the events"
        time.sleep(0.1)

    for n in range(4):
        profile = profile_of(f"user-{n}")
        assert profile_of(f"anon-{n}") == profile
        assert profile.event_count == 4
    assert Profile.objects.filter(merged_into__isnull=True).count() == 4
