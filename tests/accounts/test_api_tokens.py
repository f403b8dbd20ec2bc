"""API tokens: stored as digests, shown once, expiring and revocable; the command and the
admin create them."""

from __future__ import annotations

import importlib
import io
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts import services
from apps.accounts.models import ApiToken, token_digest
from tests.users import user_with_perms

pytestmark = pytest.mark.django_db
EVENTS = "/api/v1/events"


def _client(token: str, keyword: str = "Token") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {token}")
    return client


def test_a_token_is_stored_as_a_digest_and_authenticates() -> None:
    user = user_with_perms("events.view_event")
    row, token = services.api_token_create(user=user, name="ci")

    stored = ApiToken.objects.values_list("prefix", "digest").get(pk=row.pk)
    assert token not in stored
    assert token.startswith(stored[0])
    assert stored[1] == token_digest(token)
    assert _client(token).get(EVENTS).status_code == 200
    assert _client(token, "Bearer").get(EVENTS).status_code == 200


@pytest.mark.parametrize(
    "spoil",
    [
        lambda row: ApiToken.objects.filter(pk=row.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        ),
        lambda row: services.api_token_revoke(token=row),
        lambda row: type(row.user).objects.filter(pk=row.user_id).update(is_active=False),
    ],
    ids=["expired", "revoked", "inactive user"],
)
def test_expired_revoked_and_inactive_tokens_are_refused(spoil: Any) -> None:
    row, token = services.api_token_create(user=user_with_perms("events.view_event"), name="x")
    spoil(row)

    response = _client(token).get(EVENTS)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_token_differing_after_the_prefix_is_refused() -> None:
    _, token = services.api_token_create(user=user_with_perms("events.view_event"), name="x")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")

    assert _client(forged).get(EVENTS).status_code == 401


def test_expiry_out_of_range_is_refused_and_nothing_stored() -> None:
    user = user_with_perms()
    for days in (0, -1, 100_000):
        with pytest.raises(Exception, match="expires_days"):
            services.api_token_create(user=user, name="x", expires_days=days)
    assert not ApiToken.objects.exists()


def test_the_command_prints_a_working_token_once(django_user_model: Any) -> None:
    user_with_perms("events.view_event", username="robot")
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "create_api_token", "--user", "robot", "--expires-days", "7", stdout=out, stderr=err
    )

    token = out.getvalue().strip()
    assert _client(token).get(EVENTS).status_code == 200
    row = ApiToken.objects.get()
    assert row.user.username == "robot"
    assert timedelta(days=6) < row.expires_at - timezone.now() <= timedelta(days=7)
    assert token not in err.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "nobody"], "No user 'nobody'"),
        (["--user", "robot", "--expires-days", "0"], "expires_days"),
        (["--user", "robot", "--name", "x" * 201], "name"),
    ],
)
def test_the_command_explains_bad_input(args: list[str], message: str) -> None:
    user_with_perms(username="robot")

    with pytest.raises(CommandError, match=message):
        call_command("create_api_token", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert not ApiToken.objects.exists()


def test_the_admin_creates_a_token_and_shows_it_once(admin_user: Any) -> None:
    owner = user_with_perms("events.view_event", username="robot")
    client = Client()
    client.force_login(admin_user)

    response = client.post(
        "/admin/accounts/apitoken/add/",
        {"user": owner.pk, "name": "dashboard", "expires_days": "30"},
        follow=True,
    )

    assert response.status_code == 200
    [message] = [str(m) for m in response.context["messages"] if "not shown again" in str(m)]
    token = message.rsplit(" ", 1)[-1]
    assert _client(token).get(EVENTS).status_code == 200
    row = ApiToken.objects.get()
    assert (row.user, row.name) == (owner, "dashboard")
    assert row.expires_at is not None
    page = client.get(f"/admin/accounts/apitoken/{row.pk}/change/").content.decode()
    assert token not in page
    assert row.prefix in page


def test_the_admin_revokes_tokens(admin_user: Any) -> None:
    row, token = services.api_token_create(user=user_with_perms("events.view_event"), name="x")
    client = Client()
    client.force_login(admin_user)

    client.post(
        "/admin/accounts/apitoken/",
        {"action": "revoke", "_selected_action": [row.pk]},
    )

    assert _client(token).get(EVENTS).status_code == 401


def test_tokens_of_the_former_token_table_keep_working_and_leave_no_clear_key() -> None:
    from django.apps import apps as django_apps

    migration = importlib.import_module("apps.accounts.migrations.0002_from_authtoken")
    user = user_with_perms("events.view_event")
    old_key = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, user_id integer, "
            "created timestamp)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)", [old_key, user.pk, timezone.now()]
        )

    migration.copy_old_tokens(django_apps, SimpleNamespace(connection=connection))

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM authtoken_token")
        assert cursor.fetchone()[0] == 0
    assert old_key not in str(list(ApiToken.objects.values()))
    assert _client(old_key).get(EVENTS).status_code == 200
