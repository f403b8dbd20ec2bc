"""The scores admin: a definition made through the form (bad traits refused, nothing stored),
"train now" (bad input said at once; the named permission needed), the versions with their
holdout metrics and the chart's data, and the read-only version pages."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client, TestCase

from apps.segments.models import ScoreDefinition, ScoreModelVersion, VersionStatus
from tests.factories import segment_make
from tests.segments.scoring_data import send_history
from tests.users import user_with_perms

pytest.importorskip("sklearn", reason="the ml extra (pip install '.[ml]') runs these tests")

ADMIN = "/admin/segments/scoredefinition/"


def _form(**fields: Any) -> dict[str, Any]:
    return {
        "name": "purchase_14d",
        "description": "",
        "target_event": "purchase",
        "horizon_days": "14",
        "model_kind": "logistic_regression",
        "numeric_traits": '["seats"]',
        "categorical_traits": '["plan"]',
        "max_events": "20",
        "min_auc": "0.6",
        "score_every_hours": "24",
        "retrain_every_days": "7",
        "enabled": "on",
        **fields,
    }


def _post(client: Any, url: str, data: Any = None) -> Any:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(url, data or {}, follow=True)


def test_add_through_the_form_and_bad_traits_are_refused(admin_client: Any) -> None:
    bad = admin_client.post(f"{ADMIN}add/", _form(categorical_traits='"plan"'))
    assert bad.status_code == 200
    assert "a list of at most 20 trait keys" in bad.content.decode()
    assert not ScoreDefinition.objects.exists()

    made = admin_client.post(f"{ADMIN}add/", _form())
    assert made.status_code == 302
    definition = ScoreDefinition.objects.get()
    assert definition.categorical_traits == ["plan"]
    page = admin_client.get(f"{ADMIN}{definition.pk}/change/").content.decode()
    assert "scores.purchase_14d" in page
    assert "No model yet" in page
    assert ">Train now</button>" in page


def test_train_now_shows_the_versions_and_the_chart(admin_client: Any, tracker: Any) -> None:
    history = send_history(tracker)
    assert history.people
    admin_client.post(f"{ADMIN}add/", _form())
    admin_client.post(f"{ADMIN}add/", _form(name="upgrade_14d", target_event="upgraded"))
    upgrade = ScoreDefinition.objects.get(name="upgrade_14d")
    refused = _post(admin_client, f"{ADMIN}{upgrade.pk}/train/").content.decode()
    assert "Not trained: The target event &#x27;upgraded&#x27; never happens" in refused
    assert not ScoreModelVersion.objects.exists()

    definition = ScoreDefinition.objects.get(name="purchase_14d")
    queued = _post(admin_client, f"{ADMIN}{definition.pk}/train/").content.decode()
    assert "Version 1 is training: reload to see its metrics." in queued
    # Once the training task ran (in-process here, after the commit):
    page = admin_client.get(f"{ADMIN}{definition.pk}/change/").content.decode()
    assert "Active (scores come from it)" in page
    found = re.search(r'id="score-chart-data"[^>]*>(.*?)</script>', page, re.S)
    assert found, "the chart's data is on the page"
    chart = json.loads(found.group(1))
    assert chart["roc"][0] == [0.0, 0.0]
    assert chart["roc"][-1] == [1.0, 1.0]
    assert sum(row["count"] for row in chart["calibration"]) == 75
    assert "vendor/echarts/echarts.min.js" in page

    version = ScoreModelVersion.objects.get()
    assert version.status == VersionStatus.ACTIVE
    version_page = admin_client.get(f"/admin/segments/scoremodelversion/{version.pk}/change/")
    assert version_page.status_code == 200
    assert "score-chart-data" in version_page.content.decode()
    assert admin_client.get("/admin/segments/scoremodelversion/").status_code == 200

    # A score a segment reads can't be deleted.
    segment_make(
        "likely", {"property": "scores.purchase_14d", "operator": "greater_than", "value": 0.5}
    )
    blocked = admin_client.post(f"{ADMIN}{definition.pk}/delete/", {"post": "yes"}, follow=True)
    assert "segment &#x27;likely&#x27; reads it" in blocked.content.decode()
    assert ScoreDefinition.objects.filter(pk=definition.pk).exists()


def test_train_now_needs_the_named_permission(db: None) -> None:
    definition = ScoreDefinition.objects.create(name="purchase_14d", target_event="purchase")
    user = user_with_perms("segments.view_scoredefinition", "segments.change_scoredefinition")
    client = Client()
    client.force_login(user)
    page = client.get(f"{ADMIN}{definition.pk}/change/").content.decode()
    assert ">Train now</button>" not in page
    assert client.post(f"{ADMIN}{definition.pk}/train/").status_code == 403
    assert not ScoreModelVersion.objects.exists()
