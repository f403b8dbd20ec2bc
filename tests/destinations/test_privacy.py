"""Privacy requests reach destinations: a person's deliveries are exported and erased, and the
erase is forwarded (a `profile_deleted` delivery) to the destinations that support it."""

from __future__ import annotations

from typing import Any

from apps.destinations.models import Delivery, ProfileSyncState
from tests.consents.privacy_people import zip_files
from tests.destinations.helpers import destination_make, webhook_resource
from tests.destinations.target import WebhookTarget
from tests.factories import Sender, profile_of

URL = "/api/v1/privacy-requests"


def done(api_client: Any, capture: Any, **body: Any) -> dict[str, Any]:
    with capture(execute=True):
        response = api_client.post(URL, body, format="json")
    assert response.status_code == 202, response.content
    detail = api_client.get(f"{URL}/{response.json()['id']}").json()
    assert detail["status"] == "done", detail
    return detail


def test_export_and_erase_of_deliveries_and_the_forwarded_delete(
    target: WebhookTarget,
    tracker: Any,
    api_client: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    send = Sender(tracker)
    hook = destination_make(webhook_resource(target.url("/ok")), trigger="profile_changed")
    send.identify("ann", traits={"plan": "pro"})
    send.identify("bob", traits={"plan": "free"})
    ann = profile_of("ann").pk
    assert Delivery.objects.filter(profile_id=ann).count() == 1

    export = done(api_client, django_capture_on_commit_callbacks, kind="export", distinct_id="ann")
    files = zip_files(api_client.get(f"{URL}/{export['id']}/download").content)
    assert [d["trigger"] for d in files["deliveries"]] == ["profile_changed"]
    assert "bob" not in str(files["deliveries"])

    detail = done(api_client, django_capture_on_commit_callbacks, kind="delete", distinct_id="ann")

    assert detail["counts"]["deliveries"] == 1
    assert not ProfileSyncState.objects.filter(profile_id=ann).exists()
    # What remains of Ann: the forwarded delete, with only her ids, for the webhook to act on.
    [forwarded] = Delivery.objects.filter(profile_id=ann)
    assert forwarded.trigger == "profile_deleted"
    assert forwarded.payload["data"] == {"profile_id": str(ann), "identities": ["ann"]}
    assert forwarded.destination_id == hook.pk
    # Bob's deliveries are untouched.
    assert Delivery.objects.filter(profile_id=profile_of("bob").pk).count() == 1
