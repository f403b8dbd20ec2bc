"""The admin shows a webhook-bridge source's URL (absolute, from the request) and how to sign
requests to it; never the bridge secret, and nothing for sources of other bridges."""

from __future__ import annotations

import hashlib
import hmac
import re

import orjson
import pytest
from django.test import Client

from apps.events.models import Event
from apps.sources import services
from apps.sources.models import EventSource
from tests.users import user_with_perms

pytestmark = pytest.mark.django_db

SECRET = "whsec_admin_never_shows_this_42"
MAPPING = {"event_name": "$.type", "distinct_id": "$.user.id"}
VIEW = "sources.view_eventsource"
CHANGE = "sources.change_eventsource"


def _page(client: Client, source: EventSource) -> str:
    response = client.get(f"/admin/sources/eventsource/{source.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def _client(user: object) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _webhook_source(**signature: str) -> EventSource:
    source = services.source_create(name="Payments")
    config = {**MAPPING, "signature": signature} if signature else MAPPING
    return services.source_set_bridge(source=source, bridge="webhook", config=config, secret=SECRET)


def test_the_superuser_sees_the_url_and_how_to_sign_and_the_url_takes_signed_events(
    admin_user: object,
) -> None:
    source = _webhook_source()
    html = _page(_client(admin_user), source)

    url = f"http://testserver/api/bridges/webhook/{source.pk}"
    assert "Webhook URL" in html
    assert f'<code style="font-size:1.1em">{url}</code>' in html
    assert "Signed requests only" in html
    assert "X-Signature: sha256=" in html
    assert SECRET not in html

    # Signed as the hint says, a request to the URL shown is taken.
    body = orjson.dumps({"type": "charge.paid", "user": {"id": "cus_1"}})
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = Client().post(
        url,
        body,
        content_type="application/json",
        headers={"X-Signature": f"sha256={digest}"},
    )
    assert response.status_code == 200, response.content
    assert Event.objects.get().event_name == "charge.paid"


def test_the_hint_names_the_header_the_source_configured(admin_user: object) -> None:
    source = _webhook_source(header="X-Hub-Signature", prefix="")
    html = _page(_client(admin_user), source)
    assert "X-Hub-Signature: &lt;hex" in html
    assert "X-Signature" not in html

    services.source_set_bridge(source=source, bridge="webhook", config=MAPPING, secret="")
    assert "Unsigned requests are accepted" in _page(_client(admin_user), source)


def test_other_sources_show_no_webhook_url(admin_user: object, source: EventSource) -> None:
    html = _page(_client(admin_user), source)
    assert "Webhook URL" not in html
    assert "/api/bridges/webhook/" not in html


def test_a_user_without_the_change_permission_never_sees_the_secret() -> None:
    source = _webhook_source()
    viewer = _client(user_with_perms(VIEW))
    html = _page(viewer, source)

    assert f"/api/bridges/webhook/{source.pk}" in html  # where to post is not a secret
    assert SECRET not in html
    assert not re.search(r"name=\"bridge_secret\"", html)
    changer = _page(_client(user_with_perms(VIEW, CHANGE)), source)
    assert "Webhook URL" in changer
    assert 'name="bridge_secret"' in changer  # write-only: an empty password field
    assert SECRET not in changer
