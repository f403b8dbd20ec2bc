"""Write keys in full only for users who may change the source (admin, API, OpenAPI), and
rotation needs its own permission, in the admin and the API alike."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.sources.models import EventSource
from apps.sources.visibility import mask_write_key
from tests.users import client_with_perms, user_with_perms

pytestmark = pytest.mark.django_db
VIEW = "sources.view_eventsource"
CHANGE = "sources.change_eventsource"


def test_the_api_masks_the_key_without_the_change_permission(source: EventSource) -> None:
    viewer = client_with_perms(VIEW).get(f"/api/v1/sources/{source.pk}")
    changer = client_with_perms(VIEW, CHANGE).get(f"/api/v1/sources/{source.pk}")
    listed = client_with_perms(VIEW).get("/api/v1/sources")

    assert viewer.json()["write_key"] == mask_write_key(source.write_key)
    assert source.write_key not in viewer.content.decode()
    assert source.write_key not in listed.content.decode()
    assert changer.json()["write_key"] == source.write_key


def test_a_masked_key_keeps_only_its_ends(source: EventSource) -> None:
    masked = mask_write_key(source.write_key)

    assert masked == f"{source.write_key[:4]}…{source.write_key[-2:]}"
    assert mask_write_key("short") == "…"


def test_the_admin_masks_the_key_and_its_examples(source: EventSource) -> None:
    url = f"/admin/sources/eventsource/{source.pk}/change/"
    viewer, changer = Client(), Client()
    viewer.force_login(user_with_perms(VIEW))
    changer.force_login(user_with_perms(VIEW, CHANGE))

    hidden = viewer.get(url).content.decode()
    shown = changer.get(url).content.decode()

    assert source.write_key not in hidden
    assert mask_write_key(source.write_key) in hidden
    assert source.write_key in shown


def test_searching_by_key_needs_the_change_permission(source: EventSource) -> None:
    viewer, changer = Client(), Client()
    viewer.force_login(user_with_perms(VIEW))
    changer.force_login(user_with_perms(VIEW, CHANGE))

    hidden = viewer.get("/admin/sources/eventsource/", {"q": source.write_key})
    found = changer.get("/admin/sources/eventsource/", {"q": source.write_key})

    assert hidden.context["cl"].result_count == 0
    assert found.context["cl"].result_count == 1


def test_the_openapi_example_is_masked() -> None:
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    key = schema["components"]["schemas"]["EventSource"]["properties"]["write_key"]

    assert "…" in key["example"]
    assert "masked" in key["description"]


def test_rotating_needs_its_permission_in_the_api(source: EventSource) -> None:
    old = source.write_key
    url = f"/api/v1/sources/{source.pk}/rotate-write-key"

    refused = client_with_perms(VIEW, CHANGE).post(url)
    assert refused.status_code == 403
    assert "sources.rotate_write_key" in refused.json()["error"]["message"]
    source.refresh_from_db()
    assert source.write_key == old

    rotated = client_with_perms("sources.rotate_write_key", CHANGE).post(url)
    assert rotated.status_code == 200
    source.refresh_from_db()
    assert source.write_key != old
    assert rotated.json()["write_key"] == source.write_key


def test_rotating_needs_its_permission_in_the_admin(source: EventSource) -> None:
    old = source.write_key
    changer = Client()
    changer.force_login(user_with_perms(VIEW, CHANGE))
    body: dict[str, Any] = {"action": "rotate_write_key", "_selected_action": [str(source.pk)]}

    listing = changer.get("/admin/sources/eventsource/").content.decode()
    changer.post("/admin/sources/eventsource/", body)

    assert 'value="rotate_write_key"' not in listing
    source.refresh_from_db()
    assert source.write_key == old
    rotator = Client()
    rotator.force_login(user_with_perms(VIEW, CHANGE, "sources.rotate_write_key"))
    rotator.post("/admin/sources/eventsource/", body)
    source.refresh_from_db()
    assert source.write_key != old
