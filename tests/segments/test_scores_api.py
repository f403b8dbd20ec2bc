"""The scores API: CRUD with clear 4xx on bad input, train now, the versions, the named
permissions, and segments that read a score through the filter language."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.test import TestCase

from apps.segments.models import ProfileScore, ScoreDefinition, ScoreModelVersion, Segment
from apps.segments.scoring import services as scoring
from cdp.errors import DomainError
from tests.segments.scoring_data import send_history
from tests.users import token_client, user_with_perms

pytest.importorskip("sklearn", reason="the ml extra (pip install '.[ml]') runs these tests")

URL = "/api/v1/scores"
BODY = {
    "name": "purchase_14d",
    "target_event": "purchase",
    "horizon_days": 14,
    "categorical_traits": ["plan"],
    "numeric_traits": ["seats"],
}


def _error(response: Any) -> dict[str, Any]:
    return response.json()["error"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "Purchase 14d"}, "name"),
        ({"name": "9lives"}, "name"),
        ({"target_event": ""}, "target_event"),
        ({"horizon_days": 0}, "horizon_days"),
        ({"horizon_days": 400}, "horizon_days"),
        ({"model_kind": "neural_net"}, "model_kind"),
        ({"min_auc": 0.4}, "min_auc"),
        ({"numeric_traits": "plan"}, "numeric_traits"),
        ({"numeric_traits": ["plan"], "categorical_traits": ["plan"]}, "categorical_traits"),
        ({"categorical_traits": ["a"] * 21}, "categorical_traits"),
    ],
)
def test_bad_definitions_are_refused_with_the_field_and_nothing_stored(
    api_client: Any, change: dict[str, Any], field: str
) -> None:
    response = api_client.post(URL, {**BODY, **change}, format="json")
    assert response.status_code == 400, response.content
    assert _error(response)["field"] == field
    assert not ScoreDefinition.objects.exists()


def test_create_read_update_and_delete(api_client: Any) -> None:
    response = api_client.post(URL, BODY, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["path"] == "scores.purchase_14d"
    assert created["model_kind"] == "logistic_regression"
    assert created["active_version"] is None

    again = api_client.post(URL, BODY, format="json")
    assert again.status_code == 400
    assert _error(again)["field"] == "name"
    assert ScoreDefinition.objects.count() == 1

    assert api_client.get(URL).json()["results"][0]["name"] == "purchase_14d"
    changed = api_client.patch(
        f"{URL}/purchase_14d", {"model_kind": "gradient_boosting"}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert api_client.get(f"{URL}/purchase_14d").json()["model_kind"] == "gradient_boosting"
    assert LogEntry.objects.filter(object_repr="purchase_14d").count() == 2

    assert api_client.delete(f"{URL}/purchase_14d").status_code == 204
    assert api_client.get(f"{URL}/purchase_14d").status_code == 404


def test_train_refuses_bad_input_with_nothing_written(api_client: Any, tracker: Any) -> None:
    send_history(tracker, people=60)
    api_client.post(URL, BODY, format="json")
    response = api_client.post(f"{URL}/purchase_14d/train")
    assert response.status_code == 400
    assert _error(response)["code"] == "too_few_profiles"
    assert "at least 200" in _error(response)["message"]
    assert not ScoreModelVersion.objects.exists()


def test_train_now_then_versions_then_segments_read_the_score(
    api_client: Any, tracker: Any
) -> None:
    send_history(tracker)
    api_client.post(URL, BODY, format="json")
    api_client.post(URL, {**BODY, "name": "upgrade_14d", "target_event": "upgraded"}, format="json")

    never = api_client.post(f"{URL}/upgrade_14d/train")
    assert never.status_code == 400
    assert _error(never) == {
        "code": "target_never_happens",
        "field": "target_event",
        "message": _error(never)["message"],
    }
    assert not ScoreModelVersion.objects.exists()

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = api_client.post(f"{URL}/purchase_14d/train")
    assert response.status_code == 202, response.content
    assert response.json()["number"] == 1
    # Tasks run in-process here: the training is done once the request committed.
    versions = api_client.get(f"{URL}/purchase_14d/versions").json()["results"]
    assert [v["status"] for v in versions] == ["active"]
    assert versions[0]["metrics"]["auc"] > versions[0]["metrics"]["base_rate"]
    assert "model" not in versions[0]
    detail = api_client.get(f"{URL}/purchase_14d").json()
    assert detail["active_version"]["number"] == 1
    assert detail["last_scored_at"] is not None
    assert ProfileScore.objects.count() == 300

    # A segment of high scorers, in the text form.
    with TestCase.captureOnCommitCallbacks(execute=True):
        made = api_client.post(
            "/api/v1/segments",
            {"key": "likely", "name": "Likely", "filter_text": "scores.purchase_14d >= 0.5"},
            format="json",
        )
    assert made.status_code == 201, made.content
    high = ProfileScore.objects.filter(value__gte=0.5).count()
    assert 0 < high < 300
    assert Segment.objects.get(key="likely").member_count == high

    # The score can't be deleted or renamed while the segment reads it.
    refused = api_client.delete(f"{URL}/purchase_14d")
    assert refused.status_code == 409
    assert "segment 'likely' reads it" in _error(refused)["message"]
    assert ProfileScore.objects.count() == 300

    unknown = api_client.post(
        "/api/v1/segments",
        {"key": "typo", "name": "Typo", "filter_text": "scores.purchase_41d > 0.5"},
        format="json",
    )
    assert unknown.status_code == 400
    assert "no score named 'purchase_41d'" in _error(unknown)["message"]


def test_training_needs_the_named_permission(db: None) -> None:
    ScoreDefinition.objects.create(name="purchase_14d", target_event="purchase")
    reader = token_client(
        user_with_perms("segments.view_scoredefinition", "segments.change_scoredefinition")
    )
    assert reader.get(f"{URL}/purchase_14d").status_code == 200
    response = reader.post(f"{URL}/purchase_14d/train")
    assert response.status_code == 403
    assert "segments.train_scoredefinition" in _error(response)["message"]
    assert not ScoreModelVersion.objects.exists()


def test_a_change_to_a_score_deleted_meanwhile_is_a_404(api_client: Any) -> None:
    created = api_client.post(
        "/api/v1/scores/", {"name": "gone_14d", "target_event": "purchase"}, format="json"
    )
    assert created.status_code == 201, created.content
    definition = ScoreDefinition.objects.get(name="gone_14d")
    ScoreDefinition.objects.filter(pk=definition.pk).delete()  # another request deleted it

    with pytest.raises(DomainError) as caught:
        scoring.score_definition_update(definition=definition, target_event="signup")

    assert caught.value.status_code == 404
    assert not ScoreDefinition.objects.filter(name="gone_14d").exists()
