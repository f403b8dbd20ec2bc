"""Profile destinations and merges: the survivor of a merge (identify, alias, an explicit
merge) is delivered like any profile change, with the ids merged into it as `merged_from`."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import TestCase, override_settings

from apps.consents.models import ConsentType
from apps.destinations.models import Delivery, DeliveryAttempt, DeliveryStatus, Destination
from apps.profiles.models import ProfileMerge
from tests.destinations.helpers import deliver_all, destination_make, webhook_resource
from tests.destinations.target import WebhookTarget
from tests.factories import Sender, profile_of

pytestmark = pytest.mark.django_db


def _watching(target: WebhookTarget, *traits: str, path: str = "/ok", **config: Any) -> Destination:
    return destination_make(
        webhook_resource(target.url(path)),
        trigger="profile_changed",
        trigger_config={"traits": list(traits), **config},
    )


def _known_and_anonymous(send: Sender) -> tuple[str, str]:
    """Ann, a known user on the plan "pro", and a device not yet linked to her, whose visitor
    told us her company. Returns both profile ids."""
    send.identify("ann", traits={"plan": "pro"})
    send.people("device-1", set={"company": "acme", "color": "red"})
    ann, device = profile_of("ann"), profile_of("device-1")
    assert ann.pk != device.pk
    return str(ann.pk), str(device.pk)


def test_an_identify_that_merges_delivers_the_survivor_once_with_merged_from(
    target: WebhookTarget, send: Sender
) -> None:
    destination = _watching(target, "plan", "company")
    ann, device = _known_and_anonymous(send)
    before = len(target.delivered())

    # Login: the device's id is linked to Ann, with a trait of the identify itself.
    send.identify("ann", anonymous_id="device-1", traits={"plan": "team"})

    assert ProfileMerge.objects.filter(survivor_id=ann, merged_id=device).exists()
    new = target.delivered()[before:]
    assert len(new) == 1, [r["body"] for r in new]
    body = new[0]["body"]
    assert body["type"] == "profile_changed"
    assert body["data"]["profile"]["id"] == ann
    assert body["data"]["profile"]["traits"] == {"plan": "team", "company": "acme", "color": "red"}
    assert body["data"]["merged_from"] == [device]
    assert Delivery.objects.filter(destination=destination, profile_id=device).count() == 1
    # A later change of Ann is an ordinary one: nothing merged into her since.
    send.people("ann", set={"plan": "enterprise"})
    later = target.delivered()[-1]["body"]["data"]
    assert later["profile"]["traits"]["plan"] == "enterprise"
    assert "merged_from" not in later


def test_a_merge_that_changes_no_watched_trait_delivers_nothing(
    target: WebhookTarget, send: Sender
) -> None:
    destination = _watching(target, "plan")
    _known_and_anonymous(send)
    count = Delivery.objects.filter(destination=destination).count()

    send.identify("ann", anonymous_id="device-1")  # the device knew no plan

    assert profile_of("device-1").pk == profile_of("ann").pk  # merged
    assert Delivery.objects.filter(destination=destination).count() == count
    assert all("merged_from" not in r["body"]["data"] for r in target.delivered())


def test_an_alias_and_an_explicit_merge_deliver_the_survivor(
    target: WebhookTarget, send: Sender, api_client: Any
) -> None:
    _watching(target, "company")
    ann, device = _known_and_anonymous(send)
    send.people("device-2", set={"company": "globex"})
    other = str(profile_of("device-2").pk)
    before = len(target.delivered())

    send.alias("ann", "device-1")
    merged = [r["body"]["data"] for r in target.delivered()[before:]]
    assert [(d["profile"]["id"], d["merged_from"]) for d in merged] == [(ann, [device])]

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = api_client.post(
            f"/api/v1/profiles/{ann}/merge", {"other_profile": other}, format="json"
        )
    assert response.status_code == 201, response.content
    last = target.delivered()[-1]["body"]["data"]
    assert last["profile"]["traits"]["company"] == "globex"
    assert last["merged_from"] == [other]
    assert len(target.delivered()) == before + 2


def test_a_debounced_merge_keeps_merged_from_when_a_later_change_updates_it(
    target: WebhookTarget, send: Sender
) -> None:
    destination = _watching(target, "plan", "company", debounce_seconds=60)
    _, device = _known_and_anonymous(send)
    Delivery.objects.filter(destination=destination).delete()  # the first states: not needed

    send.identify("ann", anonymous_id="device-1")
    send.people("ann", set={"plan": "team"})  # within the window: updates the waiting one
    assert target.delivered() == []
    waiting = Delivery.objects.get(destination=destination)
    Delivery.objects.filter(pk=waiting.pk).update(next_attempt_at=waiting.created_at)
    deliver_all(destination)

    [request] = target.delivered()
    data = request["body"]["data"]
    assert data["profile"]["traits"] == {"plan": "team", "company": "acme", "color": "red"}
    assert data["merged_from"] == [device]


@override_settings(CDP_DESTINATION_RETRY_SCHEDULE=[60])
def test_a_failed_merge_delivery_is_retried_with_the_same_key_and_payload(
    target: WebhookTarget, send: Sender
) -> None:
    destination = _watching(target, "company", path="/recovering")
    ann, device = _known_and_anonymous(send)
    deliver_all(destination)
    target.fail_first = target.hits + 1  # the target fails the merge's first attempt

    send.identify("ann", anonymous_id="device-1")
    delivery = Delivery.objects.filter(destination=destination, profile_id=ann).latest("id")
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        DeliveryStatus.PENDING,
        1,
        503,
    )
    failed_at = DeliveryAttempt.objects.get(delivery=delivery).at
    assert (delivery.next_attempt_at - failed_at).total_seconds() > 50  # backing off
    assert deliver_all(destination) == 0  # not due yet
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=failed_at)  # time passes
    deliver_all(destination)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 2
    attempts = [r for r in target.requests if r["headers"]["webhook-id"] == delivery.key]
    assert [r["status"] for r in attempts] == [503, 200]
    assert [r["body"]["data"]["merged_from"] for r in attempts] == [[device], [device]]


def test_a_merge_is_not_delivered_without_the_required_consents(
    target: WebhookTarget, send: Sender
) -> None:
    ConsentType.objects.create(key="marketing", name="Marketing")
    destination = destination_make(
        webhook_resource(target.url("/ok")),
        trigger="profile_changed",
        required_consents=["marketing"],
    )
    _known_and_anonymous(send)
    send.identify("ann", anonymous_id="device-1", traits={"plan": "team"})
    assert not Delivery.objects.filter(destination=destination).exists()
    assert target.requests == []


def test_a_template_mapping_gets_merged_from_once_per_identify(
    target: WebhookTarget, send: Sender
) -> None:
    destination_make(
        webhook_resource(target.url("/ok")),
        trigger="profile_changed",
        trigger_config={"traits": ["plan"]},
        mapping_mode="template",
        mapping={
            "template": {
                "id": "{{ profile.id }}",
                "plan": "{{ profile.traits.plan }}",
                "absorbed": "{{ merged_from }}",
            }
        },
    )
    ann, device = _known_and_anonymous(send)
    before = len(target.delivered())

    send.identify("ann", anonymous_id="device-1", traits={"plan": "team"})

    assert [r["body"]["data"] for r in target.delivered()[before:]] == [
        {"id": ann, "plan": "team", "absorbed": [device]}
    ]


def test_an_unmerge_delivers_both_profiles_as_ordinary_changes(
    target: WebhookTarget, send: Sender, api_client: Any
) -> None:
    _watching(target, "company")
    ann, device = _known_and_anonymous(send)
    send.identify("ann", anonymous_id="device-1")
    merge = ProfileMerge.objects.get(survivor_id=ann, merged_id=device)
    before = len(target.delivered())

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = api_client.post(
            f"/api/v1/profiles/{ann}/unmerge", {"merge": merge.pk}, format="json"
        )
    assert response.status_code in (200, 201), response.content

    after = {
        r["body"]["data"]["profile"]["id"]: r["body"]["data"] for r in target.delivered()[before:]
    }
    assert set(after) == {ann, device}
    assert "company" not in after[ann]["profile"]["traits"]  # hers again without the device's
    assert after[device]["profile"]["traits"]["company"] == "acme"
    assert all("merged_from" not in data for data in after.values())
