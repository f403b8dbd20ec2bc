"""Data-compliance rules at ingest: remove, hash and mask, on nested properties, arrays and
missing paths; the stored row, traits and sessions never hold the raw value."""

from __future__ import annotations

import hashlib
import hmac
import logging

import pytest
from django.conf import settings

from apps.consents.compliance import mask_value
from apps.consents.models import ComplianceRule, ConsentType
from apps.events.models import Event, Session
from apps.profiles.models import Profile
from tests.factories import user_make

pytestmark = pytest.mark.django_db

RAW_EMAIL = "jane.doe@example.com"


def rule(path: str, action: str, event_name: str = "", *consents: ConsentType) -> ComplianceRule:
    made = ComplianceRule.objects.create(name=path, path=path, action=action, event_name=event_name)
    made.consent_types.set(consents)
    return made


def hmac_hex(value: str) -> str:
    return hmac.new(settings.CDP_HASH_SECRET.encode(), value.encode(), hashlib.sha256).hexdigest()


def stored(message_id: str) -> Event:
    return Event.objects.get(message_id=message_id)


def raw_anywhere(value: str) -> list[str]:
    """Tables a raw value reached (events, sessions, profiles)."""
    found = []
    for model in (Event, Session, Profile):
        for row in model.objects.all().values():
            if value in str(row):
                found.append(model.__name__)
    return found


def test_each_action_on_nested_properties_arrays_and_missing_paths(tracker, caplog):
    caplog.set_level(logging.DEBUG)
    rule("properties.user.email", "remove")
    rule("properties.items[].email", "hash")
    rule("properties.contact.phone", "mask")
    rule("properties.not.there", "remove")
    event = {
        "event_name": "ordered",
        "distinct_id": "p-1",
        "message_id": "m-1",
        "properties": {
            "user": {"email": RAW_EMAIL, "plan": "pro"},
            "items": [{"email": "a@example.com", "sku": "A"}, {"sku": "B"}, "text"],
            "contact": {"phone": "+1 555-0100"},
            "not": "a string, so the path stops here",
        },
    }

    assert tracker.post(event).json()["accepted"] == 1

    properties = stored("m-1").properties
    assert properties["user"] == {"plan": "pro"}
    assert properties["items"] == [
        {"email": hmac_hex("a@example.com"), "sku": "A"},
        {"sku": "B"},
        "text",
    ]
    assert properties["contact"] == {"phone": "+* ***-****"}
    assert properties["not"] == "a string, so the path stops here"
    assert raw_anywhere(RAW_EMAIL) == []
    assert raw_anywhere("a@example.com") == []
    assert RAW_EMAIL not in caplog.text
    assert "a@example.com" not in caplog.text


def test_rules_apply_only_to_their_event_and_when_consent_is_missing(tracker):
    marketing = ConsentType.objects.create(key="marketing", name="Marketing")
    rule("properties.email", "mask", "signed_up", marketing)

    tracker.post(
        {
            "event_name": "other",
            "distinct_id": "c-1",
            "message_id": "o",
            "properties": {"email": RAW_EMAIL},
        }
    )
    tracker.post(
        {
            "event_name": "signed_up",
            "distinct_id": "c-1",
            "message_id": "s1",
            "properties": {"email": RAW_EMAIL},
        }
    )
    tracker.post({"distinct_id": "c-1", "consents": {"marketing": True}}, path="/api/consent")
    tracker.post(
        {
            "event_name": "signed_up",
            "distinct_id": "c-1",
            "message_id": "s2",
            "properties": {"email": RAW_EMAIL},
        }
    )

    assert stored("o").properties["email"] == RAW_EMAIL
    assert stored("s1").properties["email"] == "j*******@example.com"
    assert stored("s2").properties["email"] == RAW_EMAIL


def test_trait_rules_keep_raw_values_out_of_traits(tracker):
    rule("traits.email", "hash")

    response = tracker.post(
        {
            "distinct_id": "t-1",
            "traits": {"email": RAW_EMAIL, "plan": "pro"},
            "private_traits": {"email": RAW_EMAIL},
        },
        path="/api/identify",
    )

    assert response.status_code == 200, response.content
    profile = Profile.objects.get(identities__distinct_id="t-1")
    # (e-mail is a private trait wherever it is sent: it lands in private_traits, hashed)
    assert {**profile.traits, **profile.private_traits} == {
        "email": hmac_hex(RAW_EMAIL),
        "plan": "pro",
    }
    assert raw_anywhere(RAW_EMAIL) == []


def test_mask_keeps_the_shape():
    assert mask_value("john@example.com") == "j***@example.com"
    assert mask_value("Jane") == "J***"
    assert mask_value(12345) == "*****"
    assert mask_value({"a": ["xy", None]}) == {"a": ["x*", None]}


def test_api_refuses_a_bad_path_and_an_unknown_consent_type(api_client):
    bad_path = api_client.post(
        "/api/v1/compliance-rules",
        {"name": "r", "path": "properties..email", "action": "remove"},
        format="json",
    )
    unknown = api_client.post(
        "/api/v1/compliance-rules",
        {"name": "r", "path": "properties.email", "action": "hash", "consent_types": ["nope"]},
        format="json",
    )
    assert bad_path.status_code == 400
    assert bad_path.json()["error"]["field"] == "path"
    assert unknown.status_code == 400
    assert unknown.json()["error"]["field"].startswith("consent_types")
    assert not ComplianceRule.objects.exists()


def test_api_dry_run_shows_what_the_rules_do_and_stores_nothing(api_client):
    rule("properties.email", "mask")

    response = api_client.post(
        "/api/v1/compliance-rules/dry-run",
        {"event_name": "x", "properties": {"email": "john@example.com", "n": 1}},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["properties"] == {"email": "j***@example.com", "n": 1}
    assert not Event.objects.exists()


def test_admin_dry_run_on_a_sample_event(client):
    rule("properties.email", "remove")
    staff = user_make("auditor", "consents.view_compliancerule", staff=True)
    client.force_login(staff)

    page = client.post(
        "/admin/consents/compliancerule/dry-run/",
        {"sample": '{"event_name": "x", "properties": {"email": "john@example.com", "k": 2}}'},
    )

    assert page.status_code == 200
    html = page.content.decode()
    result = html[html.index('id="dry-run-result"') :]
    assert "john@example.com" not in result
    assert "&quot;k&quot;: 2" in result
    bad = client.post("/admin/consents/compliancerule/dry-run/", {"sample": "[1,"})
    assert "Not JSON" in bad.content.decode()


def test_a_rule_saved_while_the_process_runs_applies_to_its_next_event(tracker):
    """The compiled rules are kept per process: saving a rule (as the admin does, a plain
    save) makes the next event use it, with no restart and no cache flush."""
    ok = {"event_name": "signed_up", "distinct_id": "r-1", "properties": {"email": RAW_EMAIL}}
    tracker.post({**ok, "message_id": "before"})  # rules compiled: none
    made = rule("properties.email", "remove")
    tracker.post({**ok, "message_id": "after"})
    made.action = "mask"
    made.save()
    tracker.post({**ok, "message_id": "changed"})
    made.delete()
    tracker.post({**ok, "message_id": "deleted"})

    assert stored("before").properties == {"email": RAW_EMAIL}
    assert stored("after").properties == {}
    assert stored("changed").properties == {"email": mask_value(RAW_EMAIL)}
    assert stored("deleted").properties == {"email": RAW_EMAIL}


def test_values_repeated_in_a_batch_are_hashed_and_masked_alike_and_kept_apart_by_type(tracker):
    """A batch remembers what it hashed or masked (a person's e-mail in each of their events):
    equal values get equal results, and 1, 1.0 and true (equal in Python) keep their own."""
    rule("properties.code", "hash")
    rule("properties.phone", "mask")
    values = [RAW_EMAIL, RAW_EMAIL, 1, 1.0, True, "1"]
    batch = [
        {
            "event_name": "ordered",
            "distinct_id": "p-1",
            "message_id": f"m-{n}",
            "properties": {"code": value, "phone": "+1 555-0100" if n % 2 else "0044 20 7946"},
        }
        for n, value in enumerate(values)
    ]
    assert tracker.post({"batch": batch}).json()["accepted"] == len(values)

    texts = [RAW_EMAIL, RAW_EMAIL, "1", "1.0", "true", "1"]
    for n, text in enumerate(texts):
        stored_properties = stored(f"m-{n}").properties
        assert stored_properties["code"] == hmac_hex(text), (n, values[n])
        assert stored_properties["phone"] == mask_value("+1 555-0100" if n % 2 else "0044 20 7946")
    assert raw_anywhere(RAW_EMAIL) == []
