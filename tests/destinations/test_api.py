"""The resources and destinations API: CRUD, bad input answered 4xx with the field and nothing
stored, test sends, pause/resume, the deliveries log with filters, replays, the schema."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import TestCase, override_settings

from apps.destinations import services
from apps.destinations.models import Delivery, DeliveryStatus, Destination, Resource
from tests.destinations.helpers import webhook_resource
from tests.destinations.target import WebhookTarget
from tests.factories import Sender
from tests.users import token_client, user_with_perms

pytestmark = pytest.mark.django_db


def _error(response: Any, status: int, field: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["field"] == field, error
    return error


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "r", "kind": "webhook", "credentials": {"url": "ftp://x"}}, "credentials.url"),
        ({"name": "r", "kind": "nope", "credentials": {}}, "kind"),
        ({"name": "r", "kind": "webhook", "credentials": []}, "credentials"),
        ({"name": "r", "kind": "smtp", "credentials": {"host": "h"}}, "credentials.from_email"),
        (
            {"name": "r", "kind": "redis", "credentials": {"url": "redis://h", "x": 1}},
            "credentials.x",
        ),
        (
            {
                "name": "r",
                "kind": "webhook",
                "credentials": {"url": "https://h", "signing_secrets": [{"secret": "nope"}]},
            },
            "credentials.signing_secrets",
        ),
        ({"kind": "webhook", "credentials": {"url": "https://h"}}, "name"),
    ],
)
def test_bad_resources_are_refused_and_nothing_is_stored(
    api_client: Any, body: dict[str, Any], field: str
) -> None:
    _error(api_client.post("/api/v1/resources", body, format="json"), 400, field)
    assert not Resource.objects.exists()


def test_marking_a_resource_internal_needs_its_permission() -> None:
    user = user_with_perms("destinations.add_resource", "destinations.view_resource")
    client = token_client(user)
    body = {"name": "r", "kind": "redis", "credentials": {"url": "redis://h"}, "internal": True}
    response = client.post("/api/v1/resources", body, format="json")
    assert response.status_code == 403
    assert "destinations.mark_resource_internal" in response.json()["error"]["message"]
    assert not Resource.objects.exists()


def test_a_resource_in_use_cannot_be_deleted(api_client: Any, target: WebhookTarget) -> None:
    resource = webhook_resource(target.url("/ok"))
    services.destination_create(name="d", kind="webhook", resource=resource, trigger="event")
    response = api_client.delete(f"/api/v1/resources/{resource.pk}")
    assert response.status_code == 409
    assert Resource.objects.filter(pk=resource.pk).exists()


def test_a_connection_test_says_what_answered(api_client: Any, target: WebhookTarget) -> None:
    good = webhook_resource(target.url("/ok"))
    response = api_client.post(f"/api/v1/resources/{good.pk}/test")
    assert response.json()["production"]["ok"] is True
    assert "HTTP 200" in response.json()["production"]["message"]
    closed = webhook_resource("http://127.0.0.1:1/x", name="closed")
    result = api_client.post(f"/api/v1/resources/{closed.pk}/test").json()["production"]
    assert result["ok"] is False
    assert result["message"]
    public = webhook_resource(target.url("/ok"), name="not-internal", internal=False)
    result = api_client.post(f"/api/v1/resources/{public.pk}/test").json()["production"]
    assert "internal address" in result["message"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "nope"}, "kind"),
        ({"kind": "redis_stream", "settings": {"stream": "s"}}, "resource"),
        ({"trigger": "nope"}, "trigger"),
        ({"trigger_config": {"segment": "x"}}, "trigger_config.segment"),
        (
            {"trigger_config": {"filter": {"property": "traits.x", "operator": "zz"}}},
            "trigger_config.filter",
        ),
        ({"trigger_config": {"sources": ["not-a-source"]}}, "trigger_config.sources"),
        (
            {"mapping_mode": "template", "mapping": {"template": {"a": "{{ x"}}},
            "mapping.template.a",
        ),
        ({"mapping_mode": "fields", "mapping": {"fields": {"a": "nowhere.x"}}}, "mapping.fields.a"),
        ({"settings": {"batch_size": 0}}, "settings.batch_size"),
        ({"required_consents": ["bad key!"]}, "required_consents"),
    ],
)
def test_bad_destinations_are_refused_and_nothing_is_stored(
    api_client: Any, target: WebhookTarget, change: dict[str, Any], field: str
) -> None:
    resource = webhook_resource(target.url("/ok"))
    body = {"name": "d", "kind": "webhook", "resource": resource.pk, "trigger": "event", **change}
    _error(api_client.post("/api/v1/destinations", body, format="json"), 400, field)
    assert not Destination.objects.exists()


@override_settings(CDP_DESTINATION_RETRY_SCHEDULE=[])
def test_crud_pause_resume_deliveries_and_replay(
    api_client: Any, target: WebhookTarget, tracker: Any
) -> None:
    resource = webhook_resource(target.url("/fail"))
    response = api_client.post(
        "/api/v1/destinations",
        {"name": "d", "kind": "webhook", "resource": resource.pk, "trigger": "event"},
        format="json",
    )
    assert response.status_code == 201, response.content
    pk = response.json()["id"]
    assert api_client.post(f"/api/v1/destinations/{pk}/pause").json()["enabled"] is False
    Sender(tracker).track("ann", name="while-paused")
    assert not Delivery.objects.exists()
    assert api_client.post(f"/api/v1/destinations/{pk}/resume").json()["enabled"] is True
    Sender(tracker).track("ann", name="a")
    Sender(tracker).track("bob", name="b")
    page = api_client.get(f"/api/v1/destinations/{pk}/deliveries?status=dead").json()
    assert len(page["results"]) == 2
    assert {r["last_status_code"] for r in page["results"]} == {500}
    bad = api_client.get(f"/api/v1/destinations/{pk}/deliveries?status=nope")
    _error(bad, 400, "status")
    _error(api_client.get(f"/api/v1/destinations/{pk}/deliveries?since=yesterday"), 400, "since")
    _error(
        api_client.post(f"/api/v1/destinations/{pk}/deliveries/replay", {}, format="json"),
        400,
        "ids",
    )
    services.resource_update(resource=resource, credentials={"url": target.url("/ok")})
    one = page["results"][0]["id"]
    with TestCase.captureOnCommitCallbacks(execute=True):  # the replay queues the worker
        result = api_client.post(
            f"/api/v1/destinations/{pk}/deliveries/replay", {"ids": [one]}, format="json"
        ).json()
    assert result == {"replayed": 1, "superseded": 0}
    assert Delivery.objects.get(pk=one).status == DeliveryStatus.DELIVERED
    with TestCase.captureOnCommitCallbacks(execute=True):
        result = api_client.post(
            f"/api/v1/destinations/{pk}/deliveries/replay", {"all": True}, format="json"
        ).json()
    assert result == {"replayed": 1, "superseded": 0}
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}
    test = api_client.post(
        f"/api/v1/destinations/{pk}/test", {"payload": {"x": 1}}, format="json"
    ).json()
    assert test["ok"] is True
    assert target.delivered()[-1]["body"]["data"] == {"x": 1}
    assert Delivery.objects.count() == 2  # a test send stores nothing
    assert api_client.delete(f"/api/v1/destinations/{pk}").status_code == 204


def test_the_schema_describes_the_routes(api_client: Any) -> None:
    schema = api_client.get("/api/schema/?format=json").json()
    for path in (
        "/api/v1/resources",
        "/api/v1/resources/{id}/test",
        "/api/v1/destinations",
        "/api/v1/destinations/{id}/deliveries",
        "/api/v1/destinations/{id}/deliveries/replay",
        "/api/v1/destinations/{id}/pause",
    ):
        assert any(p.rstrip("/") == path for p in schema["paths"]), path


def test_types_lists_the_registry(api_client: Any) -> None:
    names = [t["name"] for t in api_client.get("/api/v1/destinations/types").json()]
    assert {"webhook", "redis_stream", "email", "postgres_table", "kafka"} <= set(names)
