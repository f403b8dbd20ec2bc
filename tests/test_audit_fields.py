"""The API's audit entries name the fields a request sent, printable and bounded: a client's
odd keys (a NUL, a control character) never turn a successful change into a 500."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import LogEntry

from apps.consents.models import ComplianceRule

pytestmark = pytest.mark.django_db


def test_a_key_with_a_nul_is_recorded_without_it(api_client: Any) -> None:
    created = api_client.post(
        "/api/v1/compliance-rules/",
        {"name": "email", "path": "properties.email", "action": "hash"},
        format="json",
    )
    assert created.status_code == 201, created.content
    rule_id = created.json()["id"]

    changed = api_client.put(
        f"/api/v1/compliance-rules/{rule_id}/",
        {"name": "email", "path": "properties.email", "action": "mask", "x\x00\x07y": 1},
        format="json",
    )

    assert changed.status_code == 200, changed.content
    assert ComplianceRule.objects.get(pk=rule_id).action == "mask"
    entry = LogEntry.objects.filter(object_id=str(rule_id)).order_by("-pk").first()
    assert entry is not None
    assert "\x00" not in entry.change_message
    assert "xy" in entry.change_message
