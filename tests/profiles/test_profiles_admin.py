"""The profiles admin: search by any identity or email, the change page with identities and
timeline, private traits behind a permission, merge and undo actions, identification points."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from apps.profiles.models import IdentificationPoint, MergeConflict, Profile, ProfileMerge
from tests.factories import profile_of

CHANGELIST = "/admin/profiles/profile/"


@pytest.fixture
def ann(send):
    send.track("anon-ann", name="viewed_pricing")
    send.identify(
        "ann-42", "anon-ann", minutes=1, private_traits={"email": "Ann.Smith@example.com"}
    )
    send.track("ann-42", minutes=2, name="upgraded")
    send.track("someone-else", minutes=3)
    return profile_of("ann-42")


def _change_url(profile):
    return f"{CHANGELIST}{profile.pk}/change/"


@pytest.mark.parametrize("query", ["anon-ann", "ann-42", "ann.smith@example.com", "Ann.Smith"])
def test_changelist_search_by_any_identity_or_email(admin_client, ann, query):
    response = admin_client.get(CHANGELIST, {"q": query})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [ann]


def test_changelist_hides_merged_pointers(admin_client, ann, send):
    send.track("anon-2")
    send.alias("ann-42", "anon-2", minutes=5)

    response = admin_client.get(CHANGELIST)

    listed = set(response.context["cl"].result_list)
    assert listed == {ann, profile_of("someone-else")}


def test_change_page_shows_identities_and_timeline(admin_client, ann):
    response = admin_client.get(_change_url(ann))

    assert response.status_code == 200
    page = response.content.decode()
    assert "anon-ann" in page
    assert "ann-42" in page
    assert "viewed_pricing" in page
    assert "upgraded" in page
    assert page.index("upgraded") < page.index("viewed_pricing")  # newest first
    assert "Ann.Smith@example.com" in page  # superuser sees private traits


def test_private_traits_hidden_from_staff_without_the_permission(ann, django_user_model):
    user = django_user_model.objects.create_user(
        username="support", password="pw-123456!", is_staff=True
    )
    user.user_permissions.add(Permission.objects.get(codename="view_profile"))
    client = Client()
    client.force_login(user)

    page = client.get(_change_url(ann)).content.decode()
    found = client.get(CHANGELIST, {"q": "ann-42"})

    assert "ann-42" in page
    assert "Ann.Smith@example.com" not in page
    assert list(found.context["cl"].result_list) == [ann]
    assert "Ann.Smith@example.com" not in found.content.decode()
    by_email = client.get(CHANGELIST, {"q": "ann.smith@example.com"})
    assert list(by_email.context["cl"].result_list) == []  # no oracle for who is a customer

    user.user_permissions.add(Permission.objects.get(codename="view_private_traits"))
    client.force_login(django_user_model.objects.get(pk=user.pk))
    assert "Ann.Smith@example.com" in client.get(_change_url(ann)).content.decode()


def test_merge_action_and_undo_action(admin_client, send):
    send.batch([send.event("big", 0), send.event("big", 1), send.event("big", 2)])
    send.identify("user-small", minutes=3)
    big, small = profile_of("big"), profile_of("user-small")

    response = admin_client.post(
        CHANGELIST,
        {"action": "merge_profiles", "_selected_action": [str(big.pk), str(small.pk)]},
        follow=True,
    )

    assert response.status_code == 200
    assert profile_of("user-small") == big  # the one with most events survives
    merge = ProfileMerge.objects.get()
    assert (merge.trigger, merge.triggered_by) == ("admin", "root")
    assert Profile.objects.get(pk=big.pk).event_count == 4

    response = admin_client.post(
        "/admin/profiles/profilemerge/",
        {"action": "undo", "_selected_action": [str(merge.pk)]},
        follow=True,
    )

    assert response.status_code == 200
    assert profile_of("user-small") == small
    assert Profile.objects.get(pk=small.pk).merged_into_id is None
    assert Profile.objects.get(pk=big.pk).event_count == 3
    assert ProfileMerge.objects.get().undone_by == "root"


def test_conflicts_are_listed_and_can_be_merged_anyway(admin_client, send):
    send.identify("user-1", "anon-1")
    send.identify("user-2", "anon-1", minutes=1)
    conflict = MergeConflict.objects.get()

    listing = admin_client.get("/admin/profiles/mergeconflict/")
    assert listing.status_code == 200
    assert "user-1" in listing.content.decode()

    admin_client.post(
        "/admin/profiles/mergeconflict/",
        {"action": "merge_anyway", "_selected_action": [str(conflict.pk)]},
    )

    assert profile_of("user-1") == profile_of("user-2")
    assert MergeConflict.objects.get().resolved_at is not None


def test_identification_point_created_in_the_admin_applies(admin_client, send):
    response = admin_client.post(
        "/admin/profiles/identificationpoint/add/",
        {
            "name": "Signup email",
            "enabled": "on",
            "source": "",
            "event_name": "",
            "field": "properties.email",
            "kind": "email",
        },
    )
    assert response.status_code == 302, response.content
    assert IdentificationPoint.objects.get().name == "Signup email"

    send.track("anon-1", email="ann@example.com")
    send.track("anon-2", minutes=1, email="ANN@example.com")

    assert profile_of("anon-1") == profile_of("anon-2")


def test_merge_snapshot_hidden_from_staff_without_the_permission(send, django_user_model):
    send.people("anon-1", set={"email": "secret@example.com"})
    send.identify("user-1")
    send.alias("user-1", "anon-1", minutes=1)
    merge = ProfileMerge.objects.get()
    user = django_user_model.objects.create_user(
        username="support", password="pw-123456!", is_staff=True
    )
    user.user_permissions.add(Permission.objects.get(codename="view_profilemerge"))
    client = Client()
    client.force_login(user)

    page = client.get(f"/admin/profiles/profilemerge/{merge.pk}/change/")

    assert page.status_code == 200
    assert "anon-1" in page.content.decode()
    assert "secret@example.com" not in page.content.decode()

    user.user_permissions.add(Permission.objects.get(codename="view_private_traits"))
    client.force_login(django_user_model.objects.get(pk=user.pk))
    page = client.get(f"/admin/profiles/profilemerge/{merge.pk}/change/")
    assert "secret@example.com" in page.content.decode()
