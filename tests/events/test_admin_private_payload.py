"""The admin's event page shows identify payloads without private traits to users who may
not see them."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.events.models import Event
from tests.users import user_with_perms

pytestmark = pytest.mark.django_db
PHONE = "+33 6 12 34 56 78"


def test_the_event_page_hides_private_traits_without_the_permission(tracker: Any) -> None:
    response = tracker.post(
        {
            "distinct_id": "ann",
            "traits": {"plan": "pro", "email": "ann@example.com"},
            "private_traits": {"phone": PHONE},
        },
        path="/api/identify",
    )
    assert response.status_code == 200
    event = Event.objects.get(event_name="$identify")
    url = f"/admin/events/event/{event.pk}/change/"
    without, with_perm = Client(), Client()
    without.force_login(user_with_perms("events.view_event"))
    with_perm.force_login(user_with_perms("events.view_event", "profiles.view_private_traits"))

    hidden = without.get(url).content.decode()
    shown = with_perm.get(url).content.decode()

    assert PHONE not in hidden
    assert "ann@example.com" not in hidden
    assert "pro" in hidden
    assert PHONE in shown
    assert "ann@example.com" in shown
