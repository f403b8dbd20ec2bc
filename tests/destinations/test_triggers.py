"""Triggers: profile changed (watched traits, debounce), segment entered/exited, the workflow
node send_to_destination, http_request with a resource, consents, profile deletions."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import TestCase

from apps.consents.models import ConsentType
from apps.destinations import services
from apps.destinations.models import Delivery, DeliveryStatus
from apps.profiles.services import people_apply
from apps.workflows import services as workflow_services
from tests.destinations.helpers import deliver_all, destination_make, webhook_resource
from tests.destinations.target import WebhookTarget
from tests.factories import PRO, Sender, chain, node, profile_of, published, route, segment_make

pytestmark = pytest.mark.django_db


def _people(distinct_id: str, **ops: Any) -> None:
    with TestCase.captureOnCommitCallbacks(execute=True):
        people_apply(distinct_id=distinct_id, ops=ops)


def test_profile_changes_of_watched_traits_only(target: WebhookTarget, send: Sender) -> None:
    destination = destination_make(
        webhook_resource(target.url("/ok")),
        trigger="profile_changed",
        trigger_config={"traits": ["plan"]},
    )
    send.identify("ann", traits={"plan": "free", "color": "red"})
    _people("ann", set={"color": "blue"})  # not watched: nothing
    _people("ann", set={"plan": "pro"})
    _people("ann", set={"plan": "pro"})  # unchanged: nothing
    plans = [r["body"]["data"]["profile"]["traits"]["plan"] for r in target.delivered()]
    assert plans == ["free", "pro"]
    assert all("private_traits" not in r["body"]["data"]["profile"] for r in target.delivered())
    keys = [r["headers"]["webhook-id"] for r in target.delivered()]
    pid = profile_of("ann").pk
    assert keys == [f"profile:{pid}:1", f"profile:{pid}:2"]
    assert Delivery.objects.filter(destination=destination).count() == 2


def test_debounced_changes_send_the_latest_state_once(target: WebhookTarget) -> None:
    destination = destination_make(
        webhook_resource(target.url("/ok")),
        trigger="profile_changed",
        trigger_config={"debounce_seconds": 60},
    )
    for n in range(5):
        _people("ann", set={"n": n})
    assert target.delivered() == []  # waiting out the debounce
    delivery = Delivery.objects.get(destination=destination)
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=delivery.created_at)
    deliver_all(destination)
    assert [r["body"]["data"]["profile"]["traits"]["n"] for r in target.delivered()] == [4]


def test_segment_entered_and_exited(target: WebhookTarget, send: Sender) -> None:
    resource = webhook_resource(target.url("/ok"))
    segment_make("pros", PRO)
    destination_make(
        resource, name="in", trigger="segment_entered", trigger_config={"segment": "pros"}
    )
    destination_make(
        resource, name="out", trigger="segment_exited", trigger_config={"segment": "pros"}
    )
    send.identify("ann", traits={"plan": "pro"})
    _people("ann", set={"plan": "free"})
    bodies = [r["body"] for r in target.delivered()]
    assert [b["type"] for b in bodies] == ["segment_entered", "segment_exited"]
    assert bodies[0]["data"]["segment"] == {"key": "pros", "name": "Pros"}
    assert bodies[0]["data"]["profile"]["id"] == str(profile_of("ann").pk)


def test_a_rolled_back_change_writes_no_delivery(target: WebhookTarget) -> None:
    destination = destination_make(webhook_resource(target.url("/ok")), trigger="profile_changed")
    from django.db import transaction

    class Boom(Exception):
        pass

    def change_then_fail() -> None:
        with transaction.atomic():
            people_apply(distinct_id="ann", ops={"set": {"plan": "pro"}})
            raise Boom

    with pytest.raises(Boom):
        change_then_fail()
    assert not Delivery.objects.filter(destination=destination).exists()
    assert target.requests == []


def test_the_workflow_node_sends_to_a_destination(target: WebhookTarget, tracker: Any) -> None:
    destination = destination_make(webhook_resource(target.url("/ok")), trigger="workflow")
    workflow = published(
        chain(
            node(
                "s",
                "send_to_destination",
                destination="dest",
                payload={"hello": "{{ event.distinct_id }}"},
            )
        )
    )
    with TestCase.captureOnCommitCallbacks(execute=True):  # its commit bumps the rules' version
        route(workflow, "signup")
    Sender(tracker).track("ann", name="signup")
    assert [r["body"]["data"] for r in target.delivered()] == [{"hello": "ann"}]
    delivery = Delivery.objects.get(destination=destination)
    assert delivery.trigger == "workflow"
    # A test run records the send and writes nothing.
    result = workflow_services.workflow_test_run(
        workflow=workflow, event_payload={"event_name": "signup", "distinct_id": "bob"}
    )
    assert result["requests"][0]["destination"] == "dest"
    assert Delivery.objects.filter(destination=destination).count() == 1


def test_the_workflow_node_refuses_a_destination_not_triggered_by_workflows(
    target: WebhookTarget, api_client: Any
) -> None:
    destination_make(webhook_resource(target.url("/ok")), trigger="event")
    graph = chain(node("s", "send_to_destination", destination="dest"))
    response = api_client.post("/api/v1/workflows", {"name": "w", "graph": graph}, format="json")
    assert response.status_code == 400, response.content
    assert "not triggered by workflows" in response.json()["error"]["message"]


def test_http_request_takes_a_resource_and_its_test_credentials(
    target: WebhookTarget, tracker: Any
) -> None:
    services.resource_create(
        name="crm",
        kind="webhook",
        credentials={"url": target.url("/ok"), "auth": {"type": "bearer", "token": "prod"}},
        test_credentials={"url": target.url("/ok"), "auth": {"type": "bearer", "token": "test"}},
        internal=True,
    )
    workflow = published(
        chain(
            node(
                "h",
                "http_request",
                resource="crm",
                path="/contacts",
                body={"id": "{{ event.distinct_id }}"},
            )
        )
    )
    with TestCase.captureOnCommitCallbacks(execute=True):  # its commit bumps the rules' version
        route(workflow, "signup")
    Sender(tracker).track("ann", name="signup")
    workflow_services.workflow_test_run(
        workflow=workflow, event_payload={"event_name": "signup", "distinct_id": "bob"}
    )
    sent = [(r["path"], r["headers"]["authorization"], r["body"]) for r in target.requests]
    assert sent == [
        ("/ok/contacts", "Bearer prod", {"id": "ann"}),
        ("/ok/contacts", "Bearer test", {"id": "bob"}),
    ]


def test_required_consents_send_only_people_who_granted_them(
    target: WebhookTarget, send: Sender
) -> None:
    ConsentType.objects.create(key="marketing", name="Marketing")
    destination_make(webhook_resource(target.url("/ok")), required_consents=["marketing"])
    send.track("ann", name="e1")  # no decision yet: the type's default is denied
    assert target.requests == []
    for distinct_id, granted in (("ann", True), ("bob", False)):
        response = send.tracker.post(
            {"distinct_id": distinct_id, "consents": {"marketing": granted}}, path="/api/consent"
        )
        assert response.status_code == 200, response.content

    send.track("ann", name="e2")
    send.track("bob", name="e3")
    send.track("cid", name="e4")  # never asked

    # Ann's own consent_granted event goes out too (the destination takes every event).
    sent = [r["body"]["data"]["event"]["name"] for r in target.delivered()]
    assert sent == ["consent_granted", "e2"]


def test_profile_deleted_goes_to_destinations_whose_type_supports_it(
    target: WebhookTarget, send: Sender
) -> None:
    hook = destination_make(webhook_resource(target.url("/ok")), trigger="profile_changed")
    mail = services.resource_create(
        name="mail",
        kind="smtp",
        credentials={"host": "mail.example.com", "from_email": "a@example.com"},
    )
    destination_make(mail, name="mails", kind="email", settings={"subject": "s", "body": "b"})
    send.identify("ann", traits={"plan": "pro"})
    profile = profile_of("ann")
    with TestCase.captureOnCommitCallbacks(execute=True):
        written = services.destinations_profile_deleted(
            profile.pk, services.profile_identities(profile.pk)
        )
    assert written == 1
    last = target.delivered()[-1]["body"]
    assert last["type"] == "profile_deleted"
    assert last["data"] == {"profile_id": str(profile.pk), "identities": ["ann"]}
    assert Delivery.objects.filter(destination=hook, status=DeliveryStatus.DELIVERED).count() == 2
