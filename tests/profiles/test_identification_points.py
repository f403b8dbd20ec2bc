"""Identification points: identifiers found on events (email, phone) tie profiles together."""

from __future__ import annotations

import hashlib

from apps.profiles.models import (
    IdentificationPoint,
    Identity,
    IdentityKind,
    MergeConflict,
    Profile,
    ProfileMerge,
)
from apps.sources import services as source_services
from tests.factories import profile_of


def _point(**fields):
    defaults = {"name": "email on events", "field": "properties.email", "kind": "email"}
    return IdentificationPoint.objects.create(**{**defaults, **fields})


def test_an_email_matching_another_profile_merges_them_normalised(send):
    _point()
    send.track("anon-1", minutes=0, email="  Ann@Example.COM ")
    send.track("anon-2", minutes=5, email="ann @example.com")

    first = profile_of("anon-1")
    assert profile_of("anon-2") == first  # the older anonymous profile survives
    assert first.event_count == 2
    identity = Identity.objects.get(kind=IdentityKind.EMAIL)
    assert identity.distinct_id == "email:ann@example.com"
    assert identity.profile == first
    merge = ProfileMerge.objects.get()
    assert merge.trigger == "identification_point"
    assert "email on events" in merge.triggered_by


def test_phone_numbers_are_normalised(send):
    _point(name="phone", field="properties.phone", kind="phone")
    send.track("anon-1", phone="+44 (20) 7946-0958")
    send.track("anon-2", minutes=1, phone="0044 20 7946 0958")
    send.track("anon-3", minutes=2, phone="12")  # too short to be a phone number

    assert profile_of("anon-1") == profile_of("anon-2")
    assert profile_of("anon-3") != profile_of("anon-1")
    assert list(Identity.objects.filter(kind=IdentityKind.PHONE).values_list("distinct_id")) == [
        ("phone:+442079460958",)
    ]


def test_identify_traits_match_an_identifier_seen_on_events(send):
    _point(name="signup form", field="properties.email", event_name="signup_form")
    _point(name="identify traits", field="traits.email")
    send.track("anon-1", name="signup_form", email="ann@example.com")

    send.identify("user-1", minutes=10, private_traits={"email": "ANN@example.com"})

    profile = profile_of("user-1")
    assert profile_of("anon-1") == profile
    assert profile.identified
    assert ProfileMerge.objects.get().survivor == profile  # the known profile survives


def test_event_name_scoping(send):
    _point(event_name="signup_form")
    send.track("anon-1", name="page_view", email="ann@example.com")
    send.track("anon-2", name="page_view", email="ann@example.com")

    assert profile_of("anon-1") != profile_of("anon-2")
    assert not Identity.objects.filter(kind=IdentityKind.EMAIL).exists()

    send.track("anon-1", minutes=1, name="signup_form", email="ann@example.com")
    send.track("anon-2", minutes=2, name="signup_form", email="ann@example.com")
    assert profile_of("anon-1") == profile_of("anon-2")


def test_source_scoping(send, source):
    other = source_services.source_create(name="Mobile app")
    _point(source=other)
    send.track("anon-1", email="ann@example.com")
    send.track("anon-2", email="ann@example.com")
    assert profile_of("anon-1") != profile_of("anon-2")

    _point(name="website email", source=source)
    send.track("anon-1", minutes=1, email="ann@example.com")
    send.track("anon-2", minutes=2, email="ann@example.com")
    assert profile_of("anon-1") == profile_of("anon-2")


def test_disabled_points_do_nothing(send):
    _point(enabled=False)
    send.track("anon-1", email="ann@example.com")
    send.track("anon-2", email="ann@example.com")

    assert Profile.objects.filter(merged_into__isnull=True).count() == 2


def test_store_hashed_keeps_only_a_sha256_of_the_identifier(send):
    _point(store_hashed=True)
    send.track("anon-1", email="Ann@Example.com")
    send.track("anon-2", minutes=1, email="ann@example.com")

    digest = hashlib.sha256(b"ann@example.com").hexdigest()
    identity = Identity.objects.get(kind=IdentityKind.EMAIL)
    assert identity.distinct_id == f"email:sha256:{digest}"
    assert not Identity.objects.filter(distinct_id__icontains="ann@").exists()
    assert profile_of("anon-1") == profile_of("anon-2")


def test_two_known_users_sharing_an_email_are_not_merged(send, api_client):
    _point(field="traits.email")
    send.identify("user-1", "anon-1", traits={"email": "team@example.com"})
    send.identify("user-2", "anon-2", minutes=5, traits={"email": "team@example.com"})

    one, two = profile_of("user-1"), profile_of("user-2")
    assert one != two
    assert ProfileMerge.objects.count() == 0
    conflict = MergeConflict.objects.get()
    assert conflict.trigger == "identification_point"
    assert "email:team@example.com" in conflict.reason
    history = api_client.get(f"/api/v1/profiles/{two.pk}").json()["history"]
    assert [h["action"] for h in history].count("merge_refused") == 1


def test_an_anonymous_device_with_a_known_email_joins_the_known_user(send):
    _point()
    send.identify("user-1", "anon-1")
    send.track("user-1", minutes=1, email="ann@example.com")

    send.track("anon-new-device", minutes=30, email="ann@example.com")

    assert profile_of("anon-new-device") == profile_of("user-1")
