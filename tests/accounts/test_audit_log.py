"""Changes through the API are recorded like the admin's (LogEntry), once per write, and the
log is readable in the admin."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.test import Client

from apps.workflows.models import Workflow
from tests.users import client_with_perms, user_with_perms

pytestmark = pytest.mark.django_db
URL = "/api/v1/workflows"


def test_create_change_publish_delete_are_logged(api_client: Any, admin_user: Any) -> None:
    created = api_client.post(URL, {"name": "Welcome"}, format="json")
    pk = created.json()["id"]
    api_client.patch(f"{URL}/{pk}", {"name": "Welcome 2"}, format="json")
    api_client.post(f"{URL}/{pk}/publish")
    api_client.delete(f"{URL}/{pk}")

    entries = list(LogEntry.objects.order_by("pk"))
    assert [(e.action_flag, e.object_id, e.user_id) for e in entries] == [
        (ADDITION, str(pk), admin_user.pk),
        (CHANGE, str(pk), admin_user.pk),
        (CHANGE, str(pk), admin_user.pk),
        (DELETION, str(pk), admin_user.pk),
    ]
    assert all(e.content_type.model_class() is Workflow for e in entries)
    assert entries[1].get_change_message() == "Changed name through the API."
    assert "publish" in entries[2].get_change_message()
    assert entries[3].object_repr == "Welcome 2"


def test_refused_and_read_only_calls_are_not_logged(api_client: Any) -> None:
    api_client.post(URL, {"name": ""}, format="json")  # 400
    api_client.post("/api/v1/segments/preview", {"filter_text": "event_count > 1"}, format="json")
    client_with_perms().post(URL, {"name": "x"}, format="json")  # 403

    assert not LogEntry.objects.exists()


def test_the_log_is_listed_read_only_in_the_admin(api_client: Any) -> None:
    api_client.post(URL, {"name": "Welcome"}, format="json")
    viewer = user_with_perms("admin.view_logentry")
    client = Client()
    client.force_login(viewer)

    page = client.get("/admin/admin/logentry/")

    assert page.status_code == 200
    assert "Welcome" in page.content.decode()
    entry = LogEntry.objects.get()
    deleting = client.post(f"/admin/admin/logentry/{entry.pk}/delete/", {"post": "yes"})
    assert deleting.status_code == 403
    assert LogEntry.objects.filter(pk=entry.pk).exists()
