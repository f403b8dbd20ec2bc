"""`consent.<key> is granted|denied` in the filter language: text form, SQL and in-memory."""

from __future__ import annotations

import pytest

from apps.consents import services
from apps.consents.models import ConsentDefault, ConsentType
from apps.profiles.models import Profile
from apps.segments.filtering import (
    FilterError,
    evaluate,
    parse_filter,
    parse_text,
    profiles_matching,
    to_text,
)
from tests.factories import profile_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def people() -> dict[str, Profile]:
    ConsentType.objects.create(key="marketing", name="Marketing")
    ConsentType.objects.create(key="analytics", name="Analytics", default=ConsentDefault.GRANTED)
    services.consents_record(distinct_id="yes", decisions={"marketing": True}, channel="api")
    services.consents_record(
        distinct_id="no", decisions={"marketing": False, "analytics": False}, channel="api"
    )
    from apps.profiles.services import identities_resolve

    identities_resolve(["undecided"])
    return {d: profile_of(d) for d in ("yes", "no", "undecided")}


def matching(text: str) -> set[str]:
    tree = parse_text(text, scope="profile")
    sql = {p.pk for p in profiles_matching(parse_filter(tree))}
    memory = {p.pk for p in Profile.objects.all() if evaluate(parse_filter(tree), profile=p)}
    assert sql == memory  # the two evaluators agree
    names = {profile_of(d).pk: d for d in ("yes", "no", "undecided")}
    return {names[pk] for pk in sql}


def test_consent_leaves_follow_decisions_and_defaults(people):
    assert matching("consent.marketing is granted") == {"yes"}
    assert matching("consent.marketing is denied") == {"no", "undecided"}
    # analytics is granted by default: only an explicit denial denies it.
    assert matching("consent.analytics is granted") == {"yes", "undecided"}
    assert matching("consent.analytics is granted and not consent.marketing is denied") == {"yes"}


def test_text_form_round_trips_and_bad_leaves_are_refused(people):
    tree = parse_text("consent.marketing is granted")
    assert tree == {"consent": "marketing", "is": "granted"}
    assert to_text(tree) == "consent.marketing is granted"
    with pytest.raises(FilterError, match="granted or denied"):
        parse_text("consent.marketing is maybe")
    with pytest.raises(FilterError, match="unknown consent type"):
        list(profiles_matching(parse_filter({"consent": "nope", "is": "granted"})))
