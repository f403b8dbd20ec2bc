"""Privacy requests reach a person's consents: the export holds their decisions and history
(merged profiles and aliases included), the delete removes them and nobody else's."""

from __future__ import annotations

from typing import Any

import pytest

from apps.consents.models import ConsentChange, ConsentType, ProfileConsent
from tests.consents.privacy_people import zip_files
from tests.factories import Sender

URL = "/api/v1/privacy-requests"


@pytest.fixture
def marketing(db: None) -> ConsentType:
    return ConsentType.objects.create(key="marketing", name="Marketing e-mails")


def consent(send: Sender, distinct_id: str, granted: bool) -> None:
    response = send.tracker.post(
        {"distinct_id": distinct_id, "consents": {"marketing": granted}}, path="/api/consent"
    )
    assert response.status_code == 200, response.content


def done(api_client: Any, capture: Any, **body: Any) -> dict[str, Any]:
    with capture(execute=True):
        response = api_client.post(URL, body, format="json")
    assert response.status_code == 202, response.content
    detail = api_client.get(f"{URL}/{response.json()['id']}").json()
    assert detail["status"] == "done", detail
    return detail


def test_export_and_delete_cover_the_person_s_consents_only(
    send: Sender,
    marketing: ConsentType,
    api_client: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    consent(send, "device-1", True)  # given while anonymous
    send.identify("ann-42", "device-1", minutes=1)
    consent(send, "ann-42", False)  # withdrawn once known
    consent(send, "bob-7", True)

    export = done(
        api_client, django_capture_on_commit_callbacks, kind="export", distinct_id="device-1"
    )
    files = zip_files(api_client.get(f"{URL}/{export['id']}/download").content)

    assert [(c["consent_type"], c["granted"]) for c in files["profile_consents"]] == [
        ("marketing", False)
    ]
    assert [c["granted"] for c in files["consent_changes"]] == [True, False]
    assert "bob-7" not in str(files["consent_changes"])

    detail = done(
        api_client, django_capture_on_commit_callbacks, kind="delete", distinct_id="ann-42"
    )

    assert detail["counts"]["consent_changes"] == 2
    assert detail["counts"]["profile_consents"] == 1
    assert list(ConsentChange.objects.values_list("distinct_id", flat=True)) == ["bob-7"]
    assert ProfileConsent.objects.count() == 1  # Bob's decision stays
