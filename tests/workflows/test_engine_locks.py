"""A run applies its changes holding the locks processing holds for the same people
(person_locks_hold): a merge_by in a run serialises with the processing of that person, and
of the person the identifier belongs to."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, transaction

from apps.events.models import Event
from apps.profiles import locks
from apps.profiles import services as profile_services
from apps.workflows import services
from apps.workflows.models import RunStatus, WorkflowRun
from apps.workflows.tasks import run_rules
from tests.factories import chain, node, profile_of, published, route, track

pytestmark = pytest.mark.django_db(transaction=True)


def test_person_locks_are_named_as_processing_names_them(tracker: Any) -> None:
    track(tracker, "lead", "device-a", email="ann@example.com")
    event = Event.objects.get()
    names = profile_services.identity_lock_names(["device-a"])
    assert names == {"d:device-a"}
    assert names <= profile_services.profile_lock_names([event])


def test_person_locks_need_a_transaction(db: None) -> None:
    with pytest.raises(RuntimeError, match="inside a transaction"):
        locks.person_locks_hold(distinct_ids=["device-a"])
    with transaction.atomic():
        locks.person_locks_hold(distinct_ids=["device-a", "email:ann@example.com"])


class Holder(threading.Thread):
    """Holds people's locks in a transaction of its own, as processing of them does, until
    released."""

    def __init__(self, distinct_ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.distinct_ids = distinct_ids
        self.locked = threading.Event()
        self.release = threading.Event()

    def run(self) -> None:
        try:
            with transaction.atomic():
                locks.person_locks_hold(distinct_ids=self.distinct_ids)
                self.locked.set()
                self.release.wait(30)
        finally:
            connection.close()


class Runner(threading.Thread):
    def __init__(self, run_ids: list[int]) -> None:
        super().__init__(daemon=True)
        self.run_ids = run_ids
        self.executed: int | None = None

    def run(self) -> None:
        try:
            self.executed = services.runs_execute(run_ids=self.run_ids)
        finally:
            connection.close()


@pytest.mark.postgres
@pytest.mark.parametrize("held", ["device-a", "email:ann@example.com"])
def test_a_runs_merge_by_waits_for_the_processing_of_the_same_person(
    tracker: Any, monkeypatch: Any, held: str
) -> None:
    graph = chain(
        node("s", "copy_property", **{"from": "event.properties.email", "trait": "email"}),
        node("m", "merge_by", trait="email", kind="email"),
    )
    route(published(graph), "lead")
    track(tracker, "lead", "device-b", email="ann@example.com")  # runs: b owns the email
    assert WorkflowRun.objects.get().status == RunStatus.SUCCEEDED
    monkeypatch.setattr(
        run_rules, "apply_async", lambda args, kwargs=None, **options: None
    )  # not sent: stays queued
    track(tracker, "lead", "device-a", email="ann@example.com")  # its run stays queued
    run = WorkflowRun.objects.get(distinct_id="device-a")
    assert run.status == RunStatus.QUEUED

    holder = Holder([held])
    holder.start()
    assert holder.locked.wait(10)
    runner = Runner([run.pk])
    runner.start()
    runner.join(1.0)
    try:
        # Executed, but its changes wait for the lock: nothing is merged meanwhile.
        assert runner.is_alive()
        run.refresh_from_db()
        assert run.status == RunStatus.RUNNING
        assert profile_of("device-a").pk != profile_of("device-b").pk
    finally:
        holder.release.set()
        holder.join(10)
        runner.join(30)
    assert runner.executed == 1
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert profile_of("device-a").pk == profile_of("device-b").pk
