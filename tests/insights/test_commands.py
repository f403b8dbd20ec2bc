"""generate_demo_data (through the tracking endpoint) and the marketer login of setup_demo."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client, TestCase

from apps.events.models import Event, Session
from apps.profiles.models import Profile
from apps.segments.models import Segment


def test_demo_data_goes_through_ingest_into_profiles_sessions_and_segments(db):
    out = io.StringIO()
    with TestCase.captureOnCommitCallbacks(execute=True):
        call_command(
            "generate_demo_data", people=30, days=14, seed=11, no_progress=True, stdout=out
        )
    assert "through /v1/batch" in out.getvalue()
    names = set(Event.objects.values_list("event_name", flat=True))
    assert {"page_view", "signed_up", "completed_onboarding", "$identify"} <= names
    assert Event.objects.filter(processed_at__isnull=True).count() == 0
    known = Profile.objects.filter(identified=True, merged_into=None)
    assert known.exists()
    # Identify stitched the anonymous visit to the user: one profile holds both ids.
    person = known.first()
    kinds = set(person.identities.values_list("kind", flat=True))
    assert {"anonymous", "user_id"} <= kinds
    assert person.private_traits["email"].endswith(".example")
    assert "email" not in person.traits
    campaigns = set(Session.objects.values_list("utm_source", flat=True))
    assert len(campaigns - {""}) >= 3
    assert Segment.objects.filter(key="activated", member_count__gt=0).exists()


def test_demo_data_is_repeatable_with_a_seed(db):
    def names() -> list[str]:
        return sorted(Event.objects.values_list("event_name", flat=True))

    call_command(
        "generate_demo_data", people=8, days=5, seed=4, no_progress=True, stdout=io.StringIO()
    )
    first = names()
    Event.objects.all().delete()
    call_command(
        "generate_demo_data", people=8, days=5, seed=4, no_progress=True, stdout=io.StringIO()
    )
    assert names() == first


@pytest.mark.parametrize(
    ("args", "reason"),
    [({"people": 0}, "--people"), ({"days": 0}, "--days"), ({"days": 100000}, "--days")],
)
def test_demo_data_rejects_bad_sizes_and_sends_nothing(db, args, reason):
    with pytest.raises(CommandError, match=reason):
        call_command("generate_demo_data", no_progress=True, **args)
    assert not Event.objects.exists()


def test_setup_demo_creates_a_marketer_who_can_log_in(db, settings):
    settings.DEBUG = True
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    out = io.StringIO()
    call_command("setup_demo", stdout=out)
    marketer = get_user_model().objects.get(username="marketer")
    assert list(marketer.groups.values_list("name", flat=True)) == ["Marketer"]
    assert not marketer.is_staff
    # A random password, printed once; never a well-known one.
    printed = re.search(r"login marketer / (\S+)   \(shown once", out.getvalue())
    assert printed, out.getvalue()
    password = printed.group(1)
    assert password != "marketer"
    assert len(password) >= 12
    assert "generate_demo_data" in out.getvalue()
    client = Client()
    assert client.post("/login/", {"username": "marketer", "password": password}).status_code == 302
    assert client.get("/trends/").status_code == 200
    call_command("setup_demo", stdout=out)
    assert get_user_model().objects.filter(username="marketer").count() == 1
