"""The admin: credentials write-only and masked, the internal flag behind its permission, a
destination's counts, chart and mapping preview, replays."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client, override_settings

from apps.destinations import services
from apps.destinations.models import Delivery, DeliveryStatus, Resource
from tests.destinations.helpers import deliver_all, destination_make, webhook_resource
from tests.destinations.target import WebhookTarget
from tests.factories import Sender
from tests.users import user_with_perms

pytestmark = pytest.mark.django_db

SECRET = "pa55-w0rd-zzz"


@pytest.fixture
def admin_client(admin_user: Any) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def _smtp() -> Resource:
    return services.resource_create(
        name="mail",
        kind="smtp",
        credentials={"host": "mail.example.com", "password": SECRET, "from_email": "a@x.io"},
    )


def test_the_change_page_shows_credentials_masked_and_keeps_them(admin_client: Client) -> None:
    resource = _smtp()
    url = f"/admin/destinations/resource/{resource.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert SECRET not in page
    assert "********" in page
    shown = json.loads(
        json.dumps({"host": "smtp.example.com", "password": "********", "from_email": "a@x.io"})
    )
    response = admin_client.post(
        url,
        {
            "name": "mail",
            "description": "",
            "credentials_input": json.dumps(shown),
            "test_credentials_input": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    resource.refresh_from_db()
    assert resource.credentials == {
        "host": "smtp.example.com",
        "password": SECRET,
        "from_email": "a@x.io",
    }


def test_bad_credentials_are_refused_on_the_form(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/destinations/resource/add/",
        {
            "name": "r",
            "kind": "redis",
            "credentials_input": '{"url": "http://x"}',
            "test_credentials_input": "",
        },
    )
    assert response.status_code == 200
    assert "must be a redis or rediss URL" in response.content.decode()
    assert not Resource.objects.exists()


def test_only_holders_of_the_permission_mark_a_resource_internal() -> None:
    user = user_with_perms(
        "destinations.add_resource", "destinations.view_resource", "destinations.change_resource"
    )
    client = Client()
    client.force_login(user)
    response = client.post(
        "/admin/destinations/resource/add/",
        {
            "name": "r",
            "kind": "redis",
            "internal": "on",
            "credentials_input": '{"url": "redis://127.0.0.1/0"}',
            "test_credentials_input": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[-1500:]
    assert Resource.objects.get().internal is False


@override_settings(CDP_DESTINATION_RETRY_SCHEDULE=[])
def test_a_destination_page_shows_counts_chart_preview_and_replays(
    admin_client: Client, target: WebhookTarget, tracker: Any
) -> None:
    destination = destination_make(
        webhook_resource(target.url("/fail")),
        mapping_mode="template",
        mapping={"template": {"who": "{{ event.distinct_id }}"}},
    )
    Sender(tracker).track("ann", name="signup")
    assert Delivery.objects.get().status == DeliveryStatus.DEAD
    page = admin_client.get(f"/admin/destinations/destination/{destination.pk}/change/")
    text = page.content.decode()
    assert "dead: 1" in text
    assert "success-chart" in text
    assert "&quot;who&quot;: &quot;ann&quot;" in text  # the preview, against the real event
    services.resource_update(resource=destination.resource, credentials={"url": target.url("/ok")})
    response = admin_client.post(
        "/admin/destinations/delivery/",
        {"action": "replay", "_selected_action": [str(Delivery.objects.get().pk)]},
    )
    assert response.status_code == 302
    deliver_all(destination)
    assert Delivery.objects.get().status == DeliveryStatus.DELIVERED
