"""Configuring a source's bridge through the API and the admin: settings checked when saved,
the webhook secret write-only (stored encrypted, never sent back)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from django.test import Client

from apps.sources import services
from apps.sources.models import EventSource
from tests.users import client_with_perms, user_with_perms

SECRET = "whsec_never_shown_123"
MAPPING = {"event_name": "$.type", "distinct_id": "$.user.id", "properties": "$.data"}


@pytest.fixture
def source(db: None) -> EventSource:
    return services.source_create(name="Hooks")


def put_bridge(client: Any, source: EventSource, body: dict[str, Any]) -> Any:
    return client.put(f"/api/v1/sources/{source.pk}/bridge", body, format="json")


def test_the_api_sets_a_webhook_bridge_and_never_returns_the_secret(source: EventSource) -> None:
    client = client_with_perms("sources.change_eventsource", "sources.view_eventsource")
    response = put_bridge(
        client, source, {"bridge": "webhook", "config": MAPPING, "secret": SECRET}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["bridge"], body["bridge_config"], body["has_bridge_secret"]) == (
        "webhook",
        MAPPING,
        True,
    )
    detail = client.get(f"/api/v1/sources/{source.pk}")
    assert SECRET not in response.content.decode() + detail.content.decode()
    assert EventSource.objects.get(pk=source.pk).bridge_secret == SECRET


def test_a_put_without_a_secret_keeps_it_and_an_empty_one_removes_it(source: EventSource) -> None:
    client = client_with_perms("sources.change_eventsource")
    put_bridge(client, source, {"bridge": "webhook", "config": MAPPING, "secret": SECRET})
    assert put_bridge(client, source, {"bridge": "webhook", "config": {}}).json()[
        "has_bridge_secret"
    ]
    assert EventSource.objects.get(pk=source.pk).bridge_secret == SECRET
    put_bridge(client, source, {"bridge": "webhook", "secret": ""})
    assert EventSource.objects.get(pk=source.pk).bridge_secret == ""


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"bridge": "webhook", "config": {"event_name": "$.type"}}, "distinct_id is required"),
        ({"bridge": "webhook", "config": {"event_name": "$..x", "distinct_id": "$.a"}}, "path"),
        ({"bridge": "webhook", "config": {"colour": "red"}}, "unknown setting 'colour'"),
        ({"bridge": "webhook", "config": {"event_name": "{{ x }}", "distinct_id": "$.a"}}, "path"),
        ({"bridge": "redis-stream", "config": {"signature": {"header": "X"}}}, "bridge only"),
        ({"bridge": "rest", "config": {"event_name": "$.a"}}, "takes no settings"),
    ],
)
def test_bad_bridge_settings_are_400_and_nothing_changes(
    source: EventSource, body: dict[str, Any], says: str
) -> None:
    client = client_with_perms("sources.change_eventsource")
    response = put_bridge(client, source, body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == "config"
    assert says in error["message"]
    stored = EventSource.objects.get(pk=source.pk)
    assert (stored.bridge, stored.bridge_config) == ("rest", {})


def test_an_unknown_bridge_is_400(source: EventSource) -> None:
    client = client_with_perms("sources.change_eventsource")
    response = put_bridge(client, source, {"bridge": "carrier-pigeon"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "bridge"
    assert EventSource.objects.get(pk=source.pk).bridge == "rest"


def test_a_viewer_cannot_change_the_bridge(source: EventSource) -> None:
    client = client_with_perms("sources.view_eventsource")
    assert put_bridge(client, source, {"bridge": "webhook"}).status_code == 403
    assert EventSource.objects.get(pk=source.pk).bridge == "rest"


def _admin() -> Client:
    client = Client()
    client.force_login(user_with_perms("sources.change_eventsource", "sources.view_eventsource"))
    return client


def _form(source: EventSource, **changes: Any) -> dict[str, Any]:
    data = {
        "name": source.name,
        "description": "",
        "bridge": source.bridge,
        "enabled": "on",
        "bridge_config": orjson.dumps(source.bridge_config).decode(),
        "bridge_secret": "",
        "session_timeout_minutes": source.session_timeout_minutes,
        "allowed_origins": "[]",
        "rate_limit_per_second": source.rate_limit_per_second,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_the_admin_sets_the_secret_never_shows_it_and_keeps_it_when_left_blank(
    source: EventSource,
) -> None:
    client = _admin()
    url = f"/admin/sources/eventsource/{source.pk}/change/"
    response = client.post(
        url,
        _form(
            source,
            bridge="webhook",
            bridge_config=orjson.dumps(MAPPING).decode(),
            bridge_secret=SECRET,
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert EventSource.objects.get(pk=source.pk).bridge_secret == SECRET
    page = client.get(url).content.decode()
    assert SECRET not in page
    source.refresh_from_db()
    client.post(url, _form(source, bridge_config=orjson.dumps(MAPPING).decode()))
    assert EventSource.objects.get(pk=source.pk).bridge_secret == SECRET
    client.post(
        url, _form(source, bridge_config=orjson.dumps(MAPPING).decode(), clear_bridge_secret="on")
    )
    assert EventSource.objects.get(pk=source.pk).bridge_secret == ""


def test_the_admin_refuses_a_bad_mapping_with_the_reason(source: EventSource) -> None:
    client = _admin()
    response = client.post(
        f"/admin/sources/eventsource/{source.pk}/change/",
        _form(source, bridge="webhook", bridge_config='{"event_name": "$.a"}'),
    )
    assert response.status_code == 200
    assert "distinct_id is required by a mapping" in response.content.decode()
    assert EventSource.objects.get(pk=source.pk).bridge == "rest"
