"""Fixtures for the dashboard pages: demo activity sent through the tracking endpoint, and
users in each role (the groups the insights migration creates)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client, TestCase

from tests.factories import logged_in, roles_ensure


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    """Users are made per test: a cheap hasher keeps that from dominating the run."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _roles(request: pytest.FixtureRequest) -> None:
    for name in ("transactional_db", "db"):
        if name in request.fixturenames:
            request.getfixturevalue(name)
            roles_ensure()
            return


@pytest.fixture
def demo_data(db: None) -> None:
    """A small product's activity over 10 days, through /v1/batch (the real ingest path)."""
    # Processing runs on commit: run those callbacks as a real commit would.
    with TestCase.captureOnCommitCallbacks(execute=True):
        call_command("generate_demo_data", people=25, days=10, seed=3, no_progress=True)


def _user(django_user_model: Any, name: str, role: str | None) -> Any:
    user = django_user_model.objects.create_user(username=name, password="pw-" + name)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def marketer(db: None, django_user_model: Any) -> Any:
    return _user(django_user_model, "marketer", "Marketer")


@pytest.fixture
def viewer(db: None, django_user_model: Any) -> Any:
    return _user(django_user_model, "viewer", "Viewer")


@pytest.fixture
def role_admin(db: None, django_user_model: Any) -> Any:
    return _user(django_user_model, "boss", "Admin")


@pytest.fixture
def nobody(db: None, django_user_model: Any) -> Any:
    return _user(django_user_model, "nobody", None)


@pytest.fixture
def marketer_client(marketer: Any) -> Client:
    return logged_in(marketer)


@pytest.fixture
def viewer_client(viewer: Any) -> Client:
    return logged_in(viewer)


@pytest.fixture
def admin_client_role(role_admin: Any) -> Client:
    return logged_in(role_admin)
