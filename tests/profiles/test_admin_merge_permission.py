"""Merging in the admin needs the same permission as the API's merge (profiles.change_profile):
a user who may only view profiles is not offered the action and cannot run it."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.profiles.models import ProfileMerge
from tests.factories import profile_of
from tests.users import user_with_perms

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("perms", "merged"), [((), False), (("profiles.change_profile",), True)])
def test_the_merge_action_needs_the_change_permission(
    send: Any, perms: tuple[str, ...], merged: bool
) -> None:
    send.track("a-1")
    send.track("b-1")
    a, b = profile_of("a-1"), profile_of("b-1")
    client = Client()
    client.force_login(user_with_perms("profiles.view_profile", *perms))

    listing = client.get("/admin/profiles/profile/").content.decode()
    client.post(
        "/admin/profiles/profile/",
        {"action": "merge_profiles", "_selected_action": [str(a.pk), str(b.pk)]},
    )

    assert ('value="merge_profiles"' in listing) is merged
    assert ProfileMerge.objects.exists() is merged
