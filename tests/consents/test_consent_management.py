"""Consent types and a profile's consents through the management API, the admin and the
dashboard's profile page."""

from __future__ import annotations

import pytest

from apps.consents import services
from apps.consents.models import ConsentChange, ConsentType, ProfileConsent
from apps.profiles import services as profile_services
from apps.profiles.models import MergeTrigger
from tests.factories import profile_of
from tests.users import client_with_perms

pytestmark = pytest.mark.django_db


def test_consent_types_api_creates_lists_and_validates(api_client):
    created = api_client.post(
        "/api/v1/consent-types",
        {
            "key": "marketing",
            "name": "Marketing e-mails",
            "default": "denied",
            "auto_revoke_after": "365 00:00:00",
            "tags": ["email"],
            "denied_by_gpc": True,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    listed = api_client.get("/api/v1/consent-types").json()
    assert [t["key"] for t in listed["results"]] == ["marketing"]
    assert api_client.get("/api/v1/consent-types/marketing").json()["auto_revoke_after"] == (
        "365 00:00:00"
    )

    for bad, field in [
        ({"key": "Bad Key!", "name": "x"}, "key"),
        ({"key": "marketing", "name": "again"}, "key"),
        ({"key": "x", "name": "x", "default": "maybe"}, "default"),
        ({"key": "y", "name": "y", "tags": "email"}, "tags"),
        ({"key": "z", "name": "z", "auto_revoke_after": "-1 00:00:00"}, "auto_revoke_after"),
    ]:
        response = api_client.post("/api/v1/consent-types", bad, format="json")
        assert response.status_code == 400, bad
        assert response.json()["error"]["field"] == field
    assert ConsentType.objects.count() == 1


def test_profile_consents_api_shows_state_and_history_and_records_staff_decisions(admin_user):
    ConsentType.objects.create(key="marketing", name="Marketing")
    services.consents_record(distinct_id="ann", decisions={"marketing": True}, channel="api")
    profile = profile_of("ann")
    reader = client_with_perms("profiles.view_profile", "consents.view_profileconsent")
    writer = client_with_perms("profiles.view_profile", "consents.change_profileconsent")

    shown = reader.get(f"/api/v1/profiles/{profile.pk}/consents").json()
    assert [(c["key"], c["state"]) for c in shown["consents"]] == [("marketing", "granted")]
    assert [(h["key"], h["granted"], h["channel"]) for h in shown["history"]] == [
        ("marketing", True, "api")
    ]

    changed = writer.post(
        f"/api/v1/profiles/{profile.pk}/consents", {"consents": {"marketing": False}}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["changed"] == ["marketing"]
    last = ConsentChange.objects.order_by("-id").first()
    assert last is not None
    assert (last.channel, last.granted, last.previous) == ("admin", False, True)
    assert last.actor  # the staff user who made the change

    unknown = writer.post(
        f"/api/v1/profiles/{profile.pk}/consents", {"consents": {"nope": True}}, format="json"
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["field"] == "consents.nope"
    assert reader.get("/api/v1/profiles/not-a-uuid/consents").status_code == 404


def test_a_consent_for_a_merged_profile_is_refused_and_writes_nothing():
    ConsentType.objects.create(key="marketing", name="Marketing")
    profile_services.identities_resolve(["a", "b"])
    merged = profile_of("b")
    profile_services.profile_merge(
        survivor=profile_of("a"), merged=merged, trigger=MergeTrigger.ADMIN
    )
    writer = client_with_perms("profiles.view_profile", "consents.change_profileconsent")

    response = writer.post(
        f"/api/v1/profiles/{merged.pk}/consents", {"consents": {"marketing": True}}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "profile_merged"
    assert str(profile_of("a").pk) in response.json()["error"]["message"]
    assert not ProfileConsent.objects.exists()


def test_admin_profile_page_and_dashboard_profile_page_show_consents(client, admin_user):
    ConsentType.objects.create(key="marketing", name="Marketing e-mails")
    ConsentType.objects.create(key="analytics", name="Product analytics")
    services.consents_record(distinct_id="ann", decisions={"marketing": True}, channel="api")
    profile = profile_of("ann")
    client.force_login(admin_user)

    admin_page = client.get(f"/admin/profiles/profile/{profile.pk}/change/").content.decode()
    dashboard = client.get(f"/people/{profile.pk}/").content.decode()

    assert "Consents (no row: the type" in admin_page
    assert "marketing" in admin_page
    section = dashboard[dashboard.index('id="consents"') :]
    section = section[: section.index("</div></div>") + 12]
    assert "granted</span> Marketing e-mails" in section
    assert "denied</span> Product analytics" in section


def test_dashboard_roles_see_consents_and_others_do_not(client):
    from django.contrib.auth.models import Group

    from tests.factories import user_make

    ConsentType.objects.create(key="marketing", name="Marketing e-mails")
    services.consents_record(distinct_id="ann", decisions={"marketing": True}, channel="api")
    profile = profile_of("ann")
    marketer = user_make("mkt")
    marketer.groups.add(Group.objects.get(name="Marketer"))
    plain = user_make("plain", "profiles.view_profile")

    client.force_login(marketer)
    assert 'id="consents"' in client.get(f"/people/{profile.pk}/").content.decode()
    client.force_login(plain)
    page = client.get(f"/people/{profile.pk}/")
    assert page.status_code == 200
    assert 'id="consents"' not in page.content.decode()
