"""Management commands for scripts and local set-up: create_source and setup_demo."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from apps.sources.models import EventSource
from tests.clients import TrackingClient

EVENT = {"event_name": "page_viewed", "distinct_id": "user-1"}


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_source_prints_json_and_the_key_works(db):
    printed = json.loads(run("create_source", "Website"))

    assert set(printed) == {"id", "name", "write_key"}
    source = EventSource.objects.get(pk=printed["id"])
    assert printed["name"] == source.name == "Website"
    assert printed["write_key"] == source.write_key
    assert not source.ephemeral
    assert not source.requires_consent
    assert TrackingClient(Client(), printed["write_key"]).post(EVENT).status_code == 200


def test_create_source_flags(db):
    printed = json.loads(
        run(
            "create_source",
            "Kiosk",
            "--ephemeral",
            "--requires-consent",
            "--origin",
            "https://kiosk.example.com",
        )
    )

    source = EventSource.objects.get(pk=printed["id"])
    assert source.ephemeral
    assert source.requires_consent
    assert source.allowed_origins == ["https://kiosk.example.com"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [("x" * 201, "at most 200 characters"), ("", "cannot be blank")],
)
def test_create_source_rejects_bad_names_with_a_command_error(db, name, reason):
    with pytest.raises(CommandError, match=reason):
        run("create_source", name)
    assert not EventSource.objects.exists()


def test_setup_demo_creates_the_admin_and_the_source_once(db, settings):
    settings.DEBUG = True

    first = run("setup_demo")
    second = run("setup_demo", "--base-url", "http://localhost:9000/")

    User = get_user_model()
    admin = User.objects.get(username="admin")
    assert admin.is_superuser
    # A random password, printed once; never admin/admin.
    assert not admin.check_password("admin")
    [password] = re.findall(r"login admin / (\S+)", first)
    assert len(password) >= 12
    assert admin.check_password(password)
    assert password not in second
    source = EventSource.objects.get()
    assert source.write_key in first
    assert source.write_key in second
    assert "http://127.0.0.1:8000/admin/" in first
    assert "http://127.0.0.1:8000/api/docs/" in first
    assert "http://localhost:9000/admin/" in second
    assert "password unchanged" in second
    assert TrackingClient(Client(), source.write_key).post(EVENT).status_code == 200


def test_setup_demo_passwords_differ_between_installs(db, settings, django_user_model):
    settings.DEBUG = True
    first = re.findall(r"login admin / (\S+)", run("setup_demo"))
    django_user_model.objects.all().delete()
    second = re.findall(r"login admin / (\S+)", run("setup_demo"))
    assert first
    assert second
    assert first != second


def test_setup_demo_takes_a_password_from_the_option_or_the_environment(
    db, settings, django_user_model, monkeypatch
):
    settings.DEBUG = True
    run("setup_demo", "--password", "given-pass-123")
    assert django_user_model.objects.get(username="admin").check_password("given-pass-123")

    django_user_model.objects.all().delete()
    monkeypatch.setenv("CDP_DEMO_PASSWORD", "from-env-456")
    output = run("setup_demo")
    assert django_user_model.objects.get(username="admin").check_password("from-env-456")
    assert "from-env-456" in output


def test_setup_demo_keeps_an_existing_password(db, settings, django_user_model):
    settings.DEBUG = True
    django_user_model.objects.create_superuser(username="admin", password="s3cret-pass!")

    run("setup_demo")

    assert django_user_model.objects.get(username="admin").check_password("s3cret-pass!")


def test_setup_demo_refuses_to_run_in_production(db, settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DEBUG"):
        run("setup_demo")
    assert not get_user_model().objects.exists()
    assert not EventSource.objects.exists()
