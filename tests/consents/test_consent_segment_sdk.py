"""Consent from Segment's official Python SDK: `context.consent.categoryPreferences` on a call
records the decisions, and lets that call into a source that requires consent."""

from __future__ import annotations

import pytest
from segment.analytics import Client

from apps.consents import selectors
from apps.consents.models import ConsentChange, ConsentType
from apps.events.models import Event
from apps.sources import services as source_services
from tests.factories import profile_of


@pytest.mark.django_db(transaction=True)
def test_segment_sdk_consent_context_records_and_unlocks_a_consent_required_source(
    live_server, settings
):
    settings.CDP_CONSENT_CATEGORY_MAP = {"analytics_storage": "analytics"}
    ConsentType.objects.create(key="analytics", name="Analytics", required=True)
    ConsentType.objects.create(key="advertising", name="Advertising")
    source = source_services.source_create(name="Backend", requires_consent=True)
    errors: list[object] = []
    client = Client(
        write_key=source.write_key,
        host=live_server.url,
        sync_mode=True,
        on_error=lambda error, batch: errors.append(error),
    )

    client.track(user_id="sdk-1", event="Viewed Before Consent")
    client.track(
        user_id="sdk-1",
        event="Order Completed",
        properties={"total": 10},
        context={
            "consent": {
                "categoryPreferences": {"analytics_storage": "granted", "Advertising": False}
            }
        },
    )
    client.page(user_id="sdk-1", name="Thanks")
    client.flush()

    assert errors == []
    names = set(Event.objects.filter(source=source).values_list("event_name", flat=True))
    assert names == {"Order Completed", "page_view"}  # nothing before the consent
    states = {c["key"]: c["state"] for c in selectors.profile_consents(profile_of("sdk-1"))}
    assert states == {"advertising": "denied", "analytics": "granted"}
    assert set(ConsentChange.objects.values_list("channel", flat=True)) == {"segment"}
