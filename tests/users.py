"""Users with given permissions, and API clients authenticated as them with an API token."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from apps.accounts import services as account_services

_numbers = itertools.count(1)


def permissions(*names: str) -> list[Permission]:
    """Permission rows for "app_label.codename" names (all must exist)."""
    found = []
    for name in names:
        app_label, codename = name.split(".", 1)
        found.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return found


def all_view_permissions() -> list[str]:
    return [
        f"{app_label}.{codename}"
        for app_label, codename in Permission.objects.filter(
            codename__startswith="view_"
        ).values_list("content_type__app_label", "codename")
        # "view private traits" is a permission of its own, not part of reading.
        if codename != "view_private_traits"
    ]


def user_with_perms(*perms: str, username: str | None = None, staff: bool = True) -> Any:
    """A staff user (an admin login) holding exactly these permissions ("app.codename")."""
    # No password (log in with force_login): hashing one costs a noticeable time per user.
    user = get_user_model().objects.create_user(
        username=username or f"user-{next(_numbers)}", password=None, is_staff=staff
    )
    user.user_permissions.add(*permissions(*perms))
    return get_user_model().objects.get(pk=user.pk)  # a fresh permission cache


def token_client(user: Any) -> APIClient:
    """An API client sending a new API token of the user."""
    _, token = account_services.api_token_create(user=user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def client_with_perms(*perms: str, **kwargs: Any) -> APIClient:
    return token_client(user_with_perms(*perms, **kwargs))
