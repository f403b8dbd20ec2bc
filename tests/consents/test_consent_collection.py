"""Consent collection: the native endpoint, Segment's consent context, Global Privacy Control,
the CMP category mapping, bad input, history, merges, auto-revoke and consent events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.consents import selectors, services
from apps.consents.models import ConsentChange, ConsentType, ProfileConsent
from apps.events.models import Event
from apps.profiles import services as profile_services
from apps.profiles.models import MergeTrigger
from tests.factories import profile_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def types() -> dict[str, ConsentType]:
    return {
        "marketing": ConsentType.objects.create(key="marketing", name="Marketing e-mails"),
        "analytics": ConsentType.objects.create(
            key="analytics", name="Analytics", denied_by_gpc=False
        ),
        "advertising": ConsentType.objects.create(
            key="advertising", name="Advertising", denied_by_gpc=True
        ),
    }


def states(distinct_id: str) -> dict[str, str]:
    return {c["key"]: c["state"] for c in selectors.profile_consents(profile_of(distinct_id))}


def test_native_endpoint_records_decisions_with_history_and_events(tracker, types, source):
    response = tracker.post(
        {"distinct_id": "ann", "consents": {"marketing": True, "analytics": "denied"}},
        path="/api/consent",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert sorted(body["changed"]) == ["analytics", "marketing"]
    assert body["consents"] == {
        "advertising": "denied",
        "analytics": "denied",
        "marketing": "granted",
    }
    change = ConsentChange.objects.get(consent_type=types["marketing"])
    assert (change.granted, change.previous, change.channel, change.source_id) == (
        True,
        None,
        "api",
        source.pk,
    )
    assert change.distinct_id == "ann"
    emitted = Event.objects.filter(event_name__in=["consent_granted", "consent_revoked"])
    assert sorted((e.event_name, e.properties["consent"]) for e in emitted) == [
        ("consent_granted", "marketing"),
        ("consent_revoked", "analytics"),
    ]
    assert {e.distinct_id for e in emitted} == {"ann"}

    # A repeat changes nothing and writes no history; a revocation is a new history row.
    again = tracker.post(
        {"distinct_id": "ann", "consents": {"marketing": True}}, path="/api/consent"
    )
    assert again.json()["unchanged"] == ["marketing"]
    tracker.post({"distinct_id": "ann", "consents": {"marketing": False}}, path="/api/consent")
    history = list(
        ConsentChange.objects.filter(consent_type=types["marketing"])
        .order_by("at", "id")
        .values_list("granted", "previous")
    )
    assert history == [(True, None), (False, True)]
    assert states("ann")["marketing"] == "denied"


@pytest.mark.parametrize(
    ("payload", "field", "code"),
    [
        (
            {"distinct_id": "ann", "consents": {"nope": True}},
            "consents.nope",
            "unknown_consent_type",
        ),
        (
            {"distinct_id": "ann", "consents": {"marketing": "maybe"}},
            "consents.marketing",
            "invalid",
        ),
        ({"distinct_id": "ann", "consents": ["marketing"]}, "consents", "invalid"),
        ({"distinct_id": "ann", "categories": "all"}, "categories", "malformed_categories"),
        (
            {"distinct_id": "ann", "categories": {"ad_storage": 3}},
            "categories",
            "malformed_categories",
        ),
        ({"distinct_id": "ann"}, "consents", "invalid"),
        ({"distinct_id": "null", "consents": {"marketing": True}}, "distinct_id", "invalid"),
        ({"consents": {"marketing": True}}, "distinct_id", "invalid"),
    ],
)
def test_bad_consent_input_is_a_clear_400_and_writes_nothing(tracker, types, payload, field, code):
    # One good decision next to the bad one: nothing of the call may be written.
    if isinstance(payload.get("consents"), dict):
        payload["consents"] = {"analytics": True, **payload["consents"]}

    response = tracker.post(payload, path="/api/consent")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["field"], error["code"]) == (field, code)
    assert not ProfileConsent.objects.exists()
    assert not ConsentChange.objects.exists()
    assert not Event.objects.filter(event_name__startswith="consent_").exists()


def test_a_non_revokable_grant_cannot_be_revoked(tracker, types):
    types["marketing"].revokable = False
    types["marketing"].save()
    tracker.post({"distinct_id": "ann", "consents": {"marketing": True}}, path="/api/consent")

    response = tracker.post(
        {"distinct_id": "ann", "consents": {"analytics": True, "marketing": False}},
        path="/api/consent",
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_revokable"
    assert states("ann") == {"advertising": "denied", "analytics": "denied", "marketing": "granted"}


def test_segment_consent_context_on_any_call_records_categories(tracker, types, settings):
    settings.CDP_CONSENT_CATEGORY_MAP = {"ad_storage": "advertising", "C0002": "analytics"}
    message = {
        "type": "page",
        "anonymousId": "dev-1",
        "name": "Home",
        "context": {
            "consent": {
                "categoryPreferences": {
                    "ad_storage": "granted",
                    "C0002": True,
                    "Marketing": False,
                    "unknown_cmp_group": True,
                }
            }
        },
    }

    response = tracker.post(message, path="/v1/page")

    assert response.status_code == 200, response.content
    assert states("dev-1") == {
        "advertising": "granted",
        "analytics": "granted",
        "marketing": "denied",
    }
    assert set(ConsentChange.objects.values_list("channel", flat=True)) == {"segment"}
    assert Event.objects.filter(distinct_id="dev-1", event_name="page_view").exists() or (
        Event.objects.filter(distinct_id="dev-1")
        .exclude(event_name__startswith="consent_")
        .exists()
    )


def test_preferences_repeated_on_every_call_write_history_once(tracker, types):
    types["analytics"].auto_revoke_after = timedelta(days=30)
    types["analytics"].save()
    context = {"consent": {"categoryPreferences": {"analytics": True}}}
    batch = {
        "batch": [
            {"type": "track", "userId": "rep-1", "event": f"E{i}", "context": context}
            for i in range(5)
        ]
    }

    tracker.post(batch, path="/v1/batch")
    tracker.post(batch, path="/v1/batch")

    assert ConsentChange.objects.count() == 1
    assert Event.objects.filter(event_name="consent_granted").count() == 1
    assert states("rep-1")["analytics"] == "granted"


def test_malformed_segment_categories_record_nothing_and_keep_the_event(tracker, types):
    message = {
        "type": "track",
        "userId": "u-1",
        "event": "Clicked",
        "context": {"consent": {"categoryPreferences": {"marketing": "perhaps"}}},
    }

    response = tracker.post(message, path="/v1/track")

    assert response.status_code == 200
    assert not ProfileConsent.objects.exists()
    assert Event.objects.filter(distinct_id="u-1", event_name="Clicked").exists()


def test_global_privacy_control_denies_the_configured_types(tracker, types):
    tracker.post(
        {"distinct_id": "gpc-1", "consents": {"advertising": True, "analytics": True}},
        path="/api/consent",
        HTTP_SEC_GPC="1",
    )
    assert states("gpc-1") == {
        "advertising": "denied",
        "analytics": "granted",
        "marketing": "denied",
    }

    # On a tracking call too: a grant given earlier is revoked by the next GPC request.
    tracker.post({"distinct_id": "gpc-2", "consents": {"advertising": True}}, path="/api/consent")
    tracker.post({"event_name": "viewed", "distinct_id": "gpc-2"}, HTTP_SEC_GPC="1")
    assert states("gpc-2")["advertising"] == "denied"
    assert ConsentChange.objects.filter(channel="gpc", profile=profile_of("gpc-2")).count() == 1


def test_merge_keeps_the_most_recent_decision_per_type(types):
    now = timezone.now()
    services.consents_record(
        distinct_id="anon",
        decisions={"marketing": True},
        channel="api",
        at=now - timedelta(hours=1),
    )
    services.consents_record(
        distinct_id="user",
        decisions={"marketing": False, "analytics": True},
        channel="api",
        at=now - timedelta(hours=2),
    )
    services.consents_record(
        distinct_id="anon",
        decisions={"analytics": False},
        channel="api",
        at=now - timedelta(hours=3),
    )

    profile_services.profile_merge(
        survivor=profile_of("user"), merged=profile_of("anon"), trigger=MergeTrigger.ADMIN
    )

    # marketing: anon's grant (1 h ago) beats user's denial (2 h ago); analytics: user's grant
    # (2 h ago) beats anon's denial (3 h ago).
    assert states("user")["marketing"] == "granted"
    assert states("user")["analytics"] == "granted"
    assert ConsentChange.objects.filter(channel="merge").count() == 1

    # A consent later sent for the merged id lands on the survivor.
    services.consents_record(distinct_id="anon", decisions={"analytics": False}, channel="api")
    assert states("user")["analytics"] == "denied"


def test_auto_revoke_task_revokes_expired_grants_and_emits_events(types):
    types["marketing"].auto_revoke_after = timedelta(days=30)
    types["marketing"].save()
    services.consents_record(
        distinct_id="ann",
        decisions={"marketing": True, "analytics": True},
        channel="api",
        at=timezone.now() - timedelta(days=31),
    )
    row = ProfileConsent.objects.get(consent_type=types["marketing"])
    assert row.expires_at is not None

    from apps.consents.tasks import revoke_expired_consents

    assert revoke_expired_consents.delay().get() == 1

    assert states("ann") == {"advertising": "denied", "analytics": "granted", "marketing": "denied"}
    assert ConsentChange.objects.filter(channel="expiry").count() == 1
    revoked = Event.objects.get(event_name="consent_revoked")
    assert revoked.properties["consent"] == "marketing"
    assert revoked.properties["channel"] == "expiry"
    assert revoke_expired_consents.delay().get() == 0  # nothing left to revoke


def test_profiles_with_consents_selector(types):
    services.consents_record(
        distinct_id="a", decisions={"marketing": True, "analytics": True}, channel="api"
    )
    services.consents_record(distinct_id="b", decisions={"marketing": True}, channel="api")
    ids = [profile_of("a").pk, profile_of("b").pk]

    assert selectors.profiles_with_consents(ids, ["marketing"]) == set(ids)
    assert selectors.profiles_with_consents(ids, ["marketing", "analytics"]) == {profile_of("a").pk}
    assert selectors.profiles_with_consents(ids, ["nope"]) == set()
