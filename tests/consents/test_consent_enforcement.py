"""A consent-required source stores nothing of a person without the required consent."""

from __future__ import annotations

import pytest

from apps.consents.gates import dropped_count
from apps.consents.models import ConsentType
from apps.events.models import Event, Session
from apps.profiles.models import Identity
from tests.clients import tracking_client_for
from tests.factories import source_make

pytestmark = pytest.mark.django_db


def test_consent_required_source_stores_nothing_before_consent_and_everything_after():
    ConsentType.objects.create(key="analytics", name="Analytics", required=True)
    ConsentType.objects.create(key="marketing", name="Marketing")
    source = source_make("Shop", requires_consent=True)
    client = tracking_client_for(source)
    batch = {"batch": [{"event_name": f"viewed_{i}", "distinct_id": "v-1"} for i in range(3)]}

    before = client.post(batch)

    assert before.status_code == 200
    body = before.json()
    assert body["accepted"] == 0
    assert [w["code"] for w in body["warnings"]] == ["consent_missing"] * 3
    assert "requires consent" in body["warnings"][0]["warning"]
    assert not Event.objects.filter(source=source).exists()
    assert not Session.objects.exists()
    assert not Identity.objects.filter(distinct_id="v-1").exists()
    assert dropped_count(source) == 3

    # A grant of a type that isn't required is not enough.
    client.post({"distinct_id": "v-1", "consents": {"marketing": True}}, path="/api/consent")
    assert client.post(batch).json()["accepted"] == 0

    client.post({"distinct_id": "v-1", "consents": {"analytics": True}}, path="/api/consent")
    after = client.post(batch)

    assert after.json()["accepted"] == 3
    assert (
        Event.objects.filter(source=source, distinct_id="v-1", processed_at__isnull=False).count()
        == 3
    )
    assert dropped_count(source) == 6

    # Revoked: nothing again.
    client.post({"distinct_id": "v-1", "consents": {"analytics": False}}, path="/api/consent")
    assert client.post({"event_name": "late", "distinct_id": "v-1"}).json()["accepted"] == 0


def test_consent_carried_by_the_event_itself_lets_it_in():
    ConsentType.objects.create(key="analytics", name="Analytics", required=True)
    source = source_make("Shop", requires_consent=True)
    client = tracking_client_for(source)
    message = {
        "type": "track",
        "anonymousId": "dev-9",
        "event": "Viewed",
        "context": {"consent": {"categoryPreferences": {"analytics": True}}},
    }

    response = client.post(message, path="/v1/track")

    assert response.json()["accepted"] == 1
    assert Event.objects.filter(source=source, event_name="Viewed").count() == 1


def test_sources_that_do_not_require_consent_are_not_enforced():
    ConsentType.objects.create(key="analytics", name="Analytics", required=True)
    source = source_make("Server")
    client = tracking_client_for(source)

    assert client.post({"event_name": "x", "distinct_id": "s-1"}).json()["accepted"] == 1


def test_a_missing_consent_gate_fails_the_system_check():
    from apps.consents import gates
    from apps.consents.apps import check_gates_registered
    from apps.events.hooks import register_ingest_gate, unregister_ingest_gate

    assert check_gates_registered() == []
    unregister_ingest_gate(gates.COMPLIANCE_GATE)
    try:
        [error] = check_gates_registered()
        assert error.id == "consents.E001"
        assert gates.COMPLIANCE_GATE in error.msg
    finally:
        register_ingest_gate(
            gates.COMPLIANCE_GATE, gates.compliance_gate, order=gates.COMPLIANCE_ORDER
        )
