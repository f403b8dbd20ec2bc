"""The webhook destination against a real local HTTP target: signed deliveries of events,
retries, Retry-After, 410, timeouts, the circuit breaker, dead letters and their replay."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import TestCase, override_settings

from apps.destinations import services
from apps.destinations.connections import signing_secret_new
from apps.destinations.models import Delivery, DeliveryAttempt, DeliveryStatus, Destination
from apps.events.models import Event
from apps.pipeline.services import events_process
from tests.destinations.helpers import deliver_all, destination_make, statuses, webhook_resource
from tests.destinations.target import WebhookTarget
from tests.factories import Sender

pytestmark = pytest.mark.django_db

FAST = {"CDP_DESTINATION_RETRY_SCHEDULE": [0, 0, 0]}


@pytest.fixture
def secret() -> str:
    return signing_secret_new()


@pytest.fixture
def target(secret: str) -> Iterator[WebhookTarget]:
    with WebhookTarget(secret=secret) as server:
        yield server


@pytest.fixture
def send(tracker: Any) -> Sender:
    return Sender(tracker)


def _hook(target: WebhookTarget, secret: str, path: str = "/ok", **fields: Any) -> Destination:
    resource = webhook_resource(target.url(path), secret=secret)
    return destination_make(resource, **fields)


def test_an_event_is_delivered_once_signed_with_its_key_as_webhook_id(
    target: WebhookTarget, secret: str, send: Sender
) -> None:
    destination = _hook(target, secret)
    send.track("ann", name="signup", plan="pro")
    delivered = target.delivered()
    assert len(delivered) == 1
    request = delivered[0]
    assert request["verified"] is True
    delivery = Delivery.objects.get(destination=destination)
    assert request["headers"]["webhook-id"] == delivery.key
    assert request["body"]["type"] == "event"
    assert request["body"]["data"]["event"]["name"] == "signup"
    assert request["body"]["data"]["event"]["properties"] == {"plan": "pro"}
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempts == 1
    assert DeliveryAttempt.objects.get(delivery=delivery).status_code == 200


def test_an_event_processed_again_yields_no_second_delivery(
    target: WebhookTarget, secret: str, send: Sender
) -> None:
    destination = _hook(target, secret)
    send.track("ann", name="signup")
    # A worker that died after processing but before marking the events processed: the
    # redispatch processes them again.
    Event.objects.update(processed_at=None)
    with TestCase.captureOnCommitCallbacks(execute=True):
        events_process(event_ids=list(Event.objects.values_list("id", flat=True)))
    assert Delivery.objects.filter(destination=destination).count() == 1
    assert len(target.delivered()) == 1


def test_a_filter_and_sources_choose_the_events(
    target: WebhookTarget, secret: str, send: Sender, source: Any
) -> None:
    _hook(
        target,
        secret,
        trigger_config={
            "filter": {"property": "event.name", "operator": "is", "value": "purchase"},
            "sources": [str(source.pk)],
        },
    )
    send.track("ann", name="page_view")
    send.track("ann", name="purchase", amount=5)
    names = [r["body"]["data"]["event"]["name"] for r in target.delivered()]
    assert names == ["purchase"]


def test_a_template_mapping_shapes_the_payload(
    target: WebhookTarget, secret: str, send: Sender
) -> None:
    _hook(
        target,
        secret,
        mapping_mode="template",
        mapping={
            "template": {
                "who": "{{ event.distinct_id }}",
                "n": "{{ event.properties.n }}",
                "fixed": "x",
            }
        },
    )
    send.track("bob", name="signup", n=3)
    assert target.delivered()[0]["body"]["data"] == {"who": "bob", "n": 3, "fixed": "x"}


def test_a_field_mapping_shapes_the_payload(
    target: WebhookTarget, secret: str, send: Sender
) -> None:
    _hook(
        target,
        secret,
        mapping_mode="fields",
        mapping={"fields": {"user.id": "event.distinct_id", "what": "event.name"}},
    )
    send.track("bob", name="signup")
    assert target.delivered()[0]["body"]["data"] == {"user": {"id": "bob"}, "what": "signup"}


@override_settings(**FAST)
def test_a_failing_target_is_retried_then_the_delivery_is_dead_and_replayable(
    target: WebhookTarget, secret: str, send: Sender
) -> None:
    destination = _hook(target, secret, path="/fail")
    send.track("ann", name="signup")
    deliver_all(destination)
    delivery = Delivery.objects.get(destination=destination)
    assert delivery.status == DeliveryStatus.DEAD
    assert delivery.attempts == 4  # the first attempt and three retries
    assert delivery.last_status_code == 500
    assert DeliveryAttempt.objects.filter(delivery=delivery, ok=False).count() == 4
    # The target is fixed: the dead letter is replayed and arrives.
    resource = destination.resource
    services.resource_update(resource=resource, credentials={"url": target.url("/ok")})
    result = services.deliveries_replay(destination=destination)
    assert result.replayed == 1
    deliver_all(destination)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert [r["headers"]["webhook-id"] for r in target.delivered()] == [delivery.key]


def test_retry_after_of_a_429_is_honoured_and_pauses_the_destination(
    target: WebhookTarget, secret: str, send: Sender
) -> None:
    destination = _hook(target, secret, path="/busy")
    send.track("ann", name="signup")
    delivery = Delivery.objects.get(destination=destination)
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.last_status_code == 429
    wait = (delivery.next_attempt_at - DeliveryAttempt.objects.get().at).total_seconds()
    assert wait == pytest.approx(1.0, abs=0.05)
    destination.refresh_from_db()
    assert destination.circuit_open_until is not None
    # Nothing is sent before the time the target asked for.
    assert deliver_all(destination) == 0
    time.sleep(1.1)
    assert deliver_all(destination) == 1


def test_410_gone_disables_the_destination_and_keeps_the_delivery(
    target: WebhookTarget, secret: str, send: Sender
) -> None:
    destination = _hook(target, secret, path="/gone")
    send.track("ann", name="signup")
    destination.refresh_from_db()
    assert destination.enabled is False
    assert "410" in destination.disabled_reason
    delivery = Delivery.objects.get(destination=destination)
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempts == 0
    # While disabled, new changes queue nothing and nothing is sent.
    send.track("ann", name="other")
    assert Delivery.objects.filter(destination=destination).count() == 1
    services.resource_update(resource=destination.resource, credentials={"url": target.url("/ok")})
    services.destination_resume(destination=destination)
    deliver_all(destination)
    assert statuses(destination) == {delivery.key: DeliveryStatus.DELIVERED}


@override_settings(CDP_DESTINATION_RETRY_SCHEDULE=[60])
def test_a_target_that_hangs_times_out_and_is_retried_later(
    target: WebhookTarget, secret: str, send: Sender
) -> None:
    target.hang_seconds = 2.0
    destination = _hook(target, secret, path="/hang", settings={"timeout": 0.5})
    send.track("ann", name="signup")
    delivery = Delivery.objects.get(destination=destination)
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempts == 1
    assert "timed out" in delivery.last_error
    assert (delivery.next_attempt_at - DeliveryAttempt.objects.get().at).total_seconds() > 50


@override_settings(
    CDP_DESTINATION_RETRY_SCHEDULE=[0, 0, 0, 0, 0, 0],
    CDP_DESTINATION_CIRCUIT_THRESHOLD=3,
    CDP_DESTINATION_CIRCUIT_COOLDOWN=60,
)
def test_a_destination_that_keeps_failing_opens_its_circuit(
    target: WebhookTarget, secret: str, send: Sender
) -> None:
    destination = _hook(target, secret, path="/fail")
    send.track("ann", name="a")
    send.track("bob", name="b")
    deliver_all(destination)
    destination.refresh_from_db()
    assert destination.consecutive_failures >= 3
    assert destination.circuit_open_until is not None
    hits = target.hits
    assert deliver_all(destination) == 0
    assert target.hits == hits  # not hammered while open
    # After the cooldown one probe goes; its success closes the circuit and the rest follow.
    services.resource_update(resource=destination.resource, credentials={"url": target.url("/ok")})
    Destination.objects.filter(pk=destination.pk).update(circuit_open_until=None)
    deliver_all(destination)
    destination.refresh_from_db()
    assert destination.consecutive_failures == 0
    assert set(statuses(destination).values()) == {DeliveryStatus.DELIVERED}


def test_batches_carry_each_key(target: WebhookTarget, secret: str, send: Sender) -> None:
    destination = _hook(target, secret, settings={"batch_size": 10})
    send.batch([send.event(f"p{i}", name="e") for i in range(5)])
    requests = target.delivered()
    keys = sorted(item["id"] for r in requests for item in r["body"]["batch"])
    assert keys == sorted(statuses(destination))
    assert all(r["verified"] for r in requests)
    assert len(requests) == 1


def test_signatures_of_a_rotation_verify_with_the_old_and_the_new_secret(
    target: WebhookTarget, secret: str, send: Sender
) -> None:
    destination = _hook(target, secret)
    new = services.resource_rotate_signing_secret(resource=destination.resource)
    send.track("ann", name="signup")
    request = target.delivered()[0]
    assert len(request["headers"]["webhook-signature"].split(" ")) == 2
    assert request["verified"] is True  # the receiver still holds the old secret
    target.secret = new
    send.track("ann", name="again")
    assert target.delivered()[1]["verified"] is True  # and the new one verifies too


def test_a_wrong_secret_fails_verification(target: WebhookTarget, send: Sender) -> None:
    _hook(target, signing_secret_new())
    send.track("ann", name="signup")
    assert target.requests[0]["verified"] is False
