"""Faults: a target down for its first attempts gets every delivery exactly once after it
recovers, in order per profile; a worker killed in the middle of a send loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from apps.destinations import services
from apps.destinations.models import Delivery, DeliveryStatus
from cdp.crypto import keys_from_settings
from tests.destinations.helpers import deliver_all, destination_make, webhook_resource
from tests.destinations.target import WebhookTarget
from tests.factories import Sender

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
@override_settings(CDP_DESTINATION_RETRY_SCHEDULE=[0] * 20, CDP_DESTINATION_CIRCUIT_THRESHOLD=100)
def test_a_target_down_for_its_first_attempts_gets_each_delivery_once_in_order(
    target: WebhookTarget, tracker: Any
) -> None:
    target.fail_first = 7
    destination = destination_make(webhook_resource(target.url("/recovering")))
    send = Sender(tracker)
    sent: dict[str, list[str]] = defaultdict(list)
    for n in range(4):
        for person in ("ann", "bob", "cat"):
            send.track(person, minutes=n, name=f"{person}-{n}")
            sent[person].append(f"{person}-{n}")
    for _ in range(20):
        if not Delivery.objects.exclude(status=DeliveryStatus.DELIVERED).exists():
            break
        deliver_all(destination)
    delivered = target.delivered()
    keys = [r["headers"]["webhook-id"] for r in delivered]
    assert len(keys) == len(set(keys)) == 12  # every delivery, exactly once
    assert sorted(keys) == sorted(Delivery.objects.values_list("key", flat=True))
    assert target.hits > 12  # the failures did happen
    received: dict[str, list[str]] = defaultdict(list)
    for request in delivered:
        event = request["body"]["data"]["event"]
        received[event["distinct_id"]].append(event["name"])
    assert received == sent  # in order per profile


_WORKER = """
import django, os, sys
django.setup()
from apps.destinations import services
services.destination_deliver(destination_id=int(sys.argv[1]))
"""


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_send_loses_nothing(target: WebhookTarget, tracker: Any) -> None:
    target.hang_seconds = 30.0
    resource = webhook_resource(target.url("/hang"))
    destination = destination_make(resource, settings={"timeout": 0.2})
    with override_settings(CDP_DESTINATION_RETRY_SCHEDULE=[60]):
        Sender(tracker).batch([Sender(tracker).event(p, name="e") for p in ("ann", "bob")])
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.PENDING}
    # Now a worker process sends them, with time enough to be killed in the middle.
    services.destination_update(destination=destination, settings={"timeout": 20})
    Delivery.objects.update(next_attempt_at=timezone.now())
    before = target.hits
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cdp.settings",
        "DEBUG": "1",
        "DATABASE_URL": _database_url(),
        "CDP_ENCRYPTION_KEYS": ",".join(keys_from_settings()),
        "CDP_DESTINATION_LEASE_SECONDS": "1",
    }
    env.pop("PYTEST_VERSION", None)
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(destination.pk)], cwd=ROOT, env=env
    )
    try:
        deadline = time.monotonic() + 30
        while target.hits == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert target.hits > before, "the worker never sent"
        worker.send_signal(signal.SIGKILL)  # in the middle of the send
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    # The one it was sending stays claimed (until its lease runs out), the other waits.
    assert sorted(Delivery.objects.values_list("status", flat=True)) == [
        DeliveryStatus.PENDING,
        DeliveryStatus.SENDING,
    ]
    services.resource_update(resource=resource, credentials={"url": target.url("/ok")})
    time.sleep(1.2)  # the dead worker's lease runs out
    services.destination_deliver(destination_id=destination.pk)
    keys = {r["headers"]["webhook-id"] for r in target.delivered()}
    assert keys == set(Delivery.objects.values_list("key", flat=True))
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
