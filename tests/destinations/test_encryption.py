"""Secrets at rest: the database holds no plaintext credential (a dump is grepped), rotation
keeps every resource usable, and the API never sends a secret back."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from apps.destinations import services
from apps.destinations.connections import MASK, signing_secret_new
from apps.destinations.models import Resource
from tests.destinations.helpers import destination_make, webhook_resource
from tests.destinations.target import WebhookTarget

pytestmark = pytest.mark.django_db

PASSWORD = "s3cr3t-pa55w0rd-XYZ"
TOKEN = "tok-abcdef-0123456789"


def _dump() -> str:
    """Every row of every table, as text: what a database dump holds."""
    out = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            out.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(out)


def _resources(url: str) -> list[Resource]:
    secret = signing_secret_new()
    hook = webhook_resource(
        url, secret=secret, auth={"type": "bearer", "token": TOKEN}, headers={"X-Key": PASSWORD}
    )
    smtp = services.resource_create(
        name="mail",
        kind="smtp",
        credentials={
            "host": "mail.example.com",
            "port": 587,
            "username": "bot",
            "password": PASSWORD,
            "from_email": "bot@example.com",
        },
        test_credentials={
            "host": "localhost",
            "from_email": "t@example.com",
            "password": PASSWORD + "-test",
        },
    )
    redis = services.resource_create(
        name="cache", kind="redis", credentials={"url": f"redis://:{PASSWORD}@redis.example.com/0"}
    )
    return [hook, smtp, redis]


def test_the_database_holds_no_plaintext_secret(target: WebhookTarget) -> None:
    resources = _resources(target.url("/ok"))
    dump = _dump()
    for secret in (PASSWORD, TOKEN, resources[0].credentials["signing_secrets"][0]["secret"]):
        assert secret not in dump
    # The values are there all the same, for the code that uses them.
    fresh = Resource.objects.get(name="mail")
    assert fresh.credentials["password"] == PASSWORD
    assert fresh.test_credentials["password"] == PASSWORD + "-test"


def test_rotation_keeps_every_resource_usable(target: WebhookTarget, tracker: Any) -> None:
    from tests.factories import Sender

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(CDP_ENCRYPTION_KEYS=[old]):
        resources = _resources(target.url("/ok"))
        destination = destination_make(resources[0])
        before = {r.pk: (r.credentials, r.test_credentials) for r in resources}
    with override_settings(CDP_ENCRYPTION_KEYS=[new, old]):
        err = io.StringIO()
        out = io.StringIO()
        call_command("rotate_encryption_key", stdout=out, stderr=err)
        assert "Re-encrypted 6 values" in out.getvalue()  # 3 resources, 2 credential sets
        assert "100%" in err.getvalue()  # the progress bar
    with override_settings(CDP_ENCRYPTION_KEYS=[new]):  # the old key is gone
        for resource in Resource.objects.all():
            assert (resource.credentials, resource.test_credentials) == before[resource.pk]
        Sender(tracker).track("ann", name="signup")
        request = target.delivered()[0]
        assert request["headers"]["authorization"] == f"Bearer {TOKEN}"
        assert request["headers"]["x-key"] == PASSWORD
        del destination


def test_a_wrong_key_stops_the_rotation_with_what_to_do(target: WebhookTarget) -> None:
    from django.core.management.base import CommandError

    with override_settings(CDP_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        _resources(target.url("/ok"))
    with (
        override_settings(CDP_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]),
        pytest.raises(CommandError, match="add the key that encrypted it"),
    ):
        call_command("rotate_encryption_key", "--no-progress", stdout=io.StringIO())


def test_the_api_never_returns_a_secret(api_client: Any, target: WebhookTarget) -> None:
    secret = signing_secret_new()
    response = api_client.post(
        "/api/v1/resources",
        {
            "name": "hook",
            "kind": "webhook",
            "credentials": {
                "url": target.url(f"/ok?token={TOKEN}"),
                "headers": {"X-Key": PASSWORD},
                "auth": {"type": "basic", "username": "u", "password": PASSWORD},
                "signing_secrets": [{"secret": secret}],
            },
            "test_credentials": {
                "url": "https://test.example.com/x",
                "auth": {"type": "bearer", "token": TOKEN},
            },
            "internal": True,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    pk = response.json()["id"]
    seen = [response.content]
    seen.append(api_client.get("/api/v1/resources").content)
    seen.append(api_client.get(f"/api/v1/resources/{pk}").content)
    seen.append(
        api_client.patch(f"/api/v1/resources/{pk}", {"description": "x"}, format="json").content
    )
    rotated = signing_secret_new()
    seen.append(
        api_client.post(
            f"/api/v1/resources/{pk}/rotate-signing-secret", {"secret": rotated}, format="json"
        ).content
    )
    seen.append(api_client.get("/api/schema/").content)
    for body in seen:
        text = body.decode()
        for value in (PASSWORD, TOKEN, secret, rotated, secret[6:], rotated[6:]):
            assert value not in text
    shown = json.loads(seen[2])
    assert shown["credentials"]["headers"] == {"X-Key": MASK}
    assert shown["credentials"]["url"].startswith(target.url("/").rstrip("/"))
    assert shown["credentials"]["auth"] == MASK


def test_a_masked_value_sent_back_keeps_the_secret(api_client: Any) -> None:
    resource = services.resource_create(
        name="mail",
        kind="smtp",
        credentials={
            "host": "mail.example.com",
            "password": PASSWORD,
            "from_email": "a@example.com",
        },
    )
    shown = api_client.get(f"/api/v1/resources/{resource.pk}").json()["credentials"]
    assert shown == {"host": "mail.example.com", "password": MASK, "from_email": "a@example.com"}
    shown["host"] = "smtp.example.com"
    response = api_client.patch(
        f"/api/v1/resources/{resource.pk}", {"credentials": shown}, format="json"
    )
    assert response.status_code == 200, response.content
    resource.refresh_from_db()
    assert resource.credentials["password"] == PASSWORD
    assert resource.credentials["host"] == "smtp.example.com"
