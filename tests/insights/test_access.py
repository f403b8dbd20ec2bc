"""Who may open which page: login first, then a named permission per page (no staff flag)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from apps.insights.models import Dashboard, SavedInsight
from tests.factories import logged_in

PAGES = [
    "/",
    "/live/",
    "/trends/",
    "/funnels/",
    "/retention/",
    "/paths/",
    "/people/",
    "/segments/",
    "/saved/",
    "/dashboards/",
]


def test_the_roles_exist_with_what_each_may_do(db):
    marketer = {p.codename for p in Group.objects.get(name="Marketer").permissions.all()}
    viewer = {p.codename for p in Group.objects.get(name="Viewer").permissions.all()}
    admin = {p.codename for p in Group.objects.get(name="Admin").permissions.all()}
    assert {"add_savedinsight", "change_dashboard", "add_segment", "view_profile"} <= marketer
    assert "view_private_traits" not in marketer
    assert all(codename.startswith("view_") for codename in viewer)
    assert {"view_savedinsight", "view_dashboard", "view_segment"} <= viewer
    assert {"view_private_traits", "add_savedinsight", "delete_segment"} <= admin


@pytest.mark.parametrize("url", PAGES)
def test_every_page_sends_anonymous_visitors_to_the_login(db, url):
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize("url", PAGES[1:])
def test_a_user_without_a_role_is_refused_every_page_but_home(nobody, url):
    assert logged_in(nobody).get(url).status_code == 403


def test_a_staff_flag_alone_opens_nothing(nobody):
    nobody.is_staff = True
    nobody.save(update_fields=["is_staff"])
    assert logged_in(nobody).get("/trends/").status_code == 403


def test_home_of_a_user_without_a_role_shows_no_data(nobody, demo_data):
    body = logged_in(nobody).get("/").content.decode()
    assert "Active people" not in body
    assert "Newest people" not in body


@pytest.mark.parametrize("url", PAGES)
def test_marketer_and_viewer_open_every_page(marketer_client, viewer_client, url):
    assert marketer_client.get(url).status_code == 200
    assert viewer_client.get(url).status_code == 200


def test_login_page_logs_in_and_lands_on_home(marketer):
    client = Client()
    page = client.get("/login/")
    assert page.status_code == 200
    assert b"Log in" in page.content
    response = client.post("/login/", {"username": "marketer", "password": "pw-marketer"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_wrong_password_stays_on_the_login_page_with_the_reason(marketer):
    response = Client().post("/login/", {"username": "marketer", "password": "nope"})
    assert response.status_code == 200
    assert b"correct username and password" in response.content


def test_logout_is_a_post_and_ends_the_session(marketer_client):
    response = marketer_client.post("/logout/")
    assert response.status_code == 302
    assert marketer_client.get("/").status_code == 302


def test_the_admin_view_site_link_points_at_the_dashboard(admin_user, client):
    client.force_login(admin_user)
    assert b'href="/"' in client.get("/admin/").content


def test_a_viewer_can_not_save_insights_or_change_dashboards(viewer_client, marketer):
    saved = SavedInsight.objects.create(
        name="Signups", kind="trends", query={"series": [{"event": "signed_up"}]}
    )
    dashboard = Dashboard.objects.create(name="Growth")
    page = viewer_client.get(f"/saved/{saved.pk}/", follow=True)
    assert page.status_code == 200
    assert b"save-insight" not in page.content
    save = viewer_client.post(
        "/insights/trends/save/", {"name": "Mine", "query_string": "event=signed_up"}
    )
    assert save.status_code == 403
    add = viewer_client.post("/dashboards/add/", {"dashboard": dashboard.pk, "insight": saved.pk})
    assert add.status_code == 403
    assert viewer_client.post("/dashboards/new/", {"name": "Mine"}).status_code == 403
    assert viewer_client.post(f"/saved/{saved.pk}/delete/").status_code == 403
    assert viewer_client.get("/segments/new/").status_code == 403
    assert SavedInsight.objects.count() == 1
    assert Dashboard.objects.count() == 1
    assert not dashboard.items.exists()


def test_saved_insights_and_dashboards_in_the_admin(admin_user, client, marketer):
    saved = SavedInsight.objects.create(name="Signups", kind="trends", query={}, owner=marketer)
    dashboard = Dashboard.objects.create(name="Growth", owner=marketer)
    dashboard.items.create(insight=saved)
    client.force_login(admin_user)
    assert b"Signups" in client.get("/admin/insights/savedinsight/").content
    page = client.get(f"/admin/insights/dashboard/{dashboard.pk}/change/")
    assert page.status_code == 200
    assert b"Signups" in page.content
