"""Each operator on both evaluators: the SQL and in-memory answers are the same and right."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apps.events.models import Event
from apps.profiles.models import Group, GroupMembership, GroupType, Identity, Profile
from apps.segments.filtering import evaluate, events_matching, parse_filter, profiles_matching

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
_ids = itertools.count()


def make_profile(traits: Any = None, **fields: Any) -> Profile:
    profile = Profile.objects.create(traits=traits if traits is not None else {}, **fields)
    Identity.objects.create(distinct_id=f"person-{next(_ids)}", profile=profile)
    return profile


def make_event(profile: Profile, source: Any, name: str = "purchase", **fields: Any) -> Event:
    n = next(_ids)
    fields.setdefault("timestamp", NOW - timedelta(days=1))
    return Event.objects.create(
        source=source,
        message_id=f"m-{n}",
        event_name=name,
        distinct_id=profile.identities.first().distinct_id,  # type: ignore[union-attr]
        received_at=NOW,
        **fields,
    )


def answer(filter_json: Any, profile: Profile, *, scope: str = "profile") -> bool:
    """Both evaluators' answer for one profile; fails when they disagree."""
    filt = parse_filter(filter_json, scope=scope)
    in_sql = profiles_matching(filt, now=NOW).filter(pk=profile.pk).exists()
    in_memory = evaluate(filt, profile=profile, now=NOW)
    assert in_sql == in_memory, f"SQL says {in_sql}, memory says {in_memory} for {filter_json}"
    return in_sql


def trait(value: Any, operator: str, operand: Any = None, *, path: str = "traits.x") -> bool:
    profile = make_profile({} if value is _MISSING else {"x": value, "address": {"x": value}})
    leaf: dict[str, Any] = {"property": path, "operator": operator}
    if operand is not None:
        leaf["value"] = operand
    return answer(leaf, profile)


_MISSING = object()

pytestmark = pytest.mark.django_db


# --- strings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "operator", "operand", "expected"),
    [
        ("pro", "is", "pro", True),
        ("Pro", "is", "pro", False),  # is: exact
        ("pro", "is_not", "pro", False),
        ("team", "is_not", "pro", True),
        (_MISSING, "is_not", "pro", True),  # negated operators are true on missing
        (None, "is_not", "pro", True),
        (5, "is_not", "5", True),
        (5, "is", "5", False),  # a number is not the string "5"
        ("", "is", "", True),
        ("Hello World", "contains", "o w", True),  # contains: ASCII case-insensitive
        ("Hello World", "not_contains", "O W", False),
        ("Hello", "contains", "xyz", False),
        ("Hello", "not_contains", "xyz", True),
        (_MISSING, "not_contains", "x", True),
        (_MISSING, "contains", "x", False),
        ("MÜNCHEN", "contains", "münchen", False),  # non-ASCII letters compare exactly
        ("München", "contains", "mün", True),
        ("München", "contains", "MÜN", False),
        ("Straße", "contains", "STRASSE", False),
        ("ΑΘΗΝΑ", "contains", "αθηνα", False),
        ("αθηνα", "contains", "αθηνα", True),
        ("100% sure", "contains", "0%", True),  # LIKE wildcards are escaped
        ("1000 sure", "contains", "0%", False),
        ("a_b", "contains", "_", True),
        ("ab", "contains", "_", False),
        ("a\\b", "contains", "\\", True),
        ("Acme Inc", "starts_with", "acme", True),
        ("Acme Inc", "starts_with", "inc", False),
        ("x@ACME.com", "ends_with", "@acme.com", True),
        ("x@acme.co", "ends_with", "@acme.com", False),
        (["pro"], "contains", "pro", False),  # a list is not a string
        ({"a": "pro"}, "is", "pro", False),
    ],
)
def test_string_operators(stored: Any, operator: str, operand: Any, expected: bool) -> None:
    assert trait(stored, operator, operand) is expected
    assert trait(stored, operator, operand, path="traits.address.x") is expected


@pytest.mark.parametrize(
    ("stored", "expected"),
    [("x", True), ("", True), (0, True), (False, True), ([], True), ({}, True), (None, False)],
)
def test_is_set(stored: Any, expected: bool) -> None:
    assert trait(stored, "is_set") is expected
    assert trait(stored, "is_not_set") is not expected
    assert trait(_MISSING, "is_set") is False
    assert trait(_MISSING, "is_not_set") is True


# --- numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "operator", "operand", "expected"),
    [
        (10, "equals", 10, True),
        (10.0, "equals", 10, True),
        (0.1, "equals", 0.1, True),
        ("10", "equals", 10, False),  # numeric strings are not numbers
        ("10", "not_equals", 10, True),
        ("10", "greater_than", 5, False),
        (True, "equals", 1, False),  # JSON true is not 1
        (_MISSING, "not_equals", 1, True),
        (_MISSING, "greater_than", 1, False),
        (10, "not_equals", 10, False),
        (10, "greater_than", 5, True),
        (5, "greater_than", 5, False),
        (5, "greater_than_or_equal", 5, True),
        (-1.5, "less_than", -1, True),
        (-1, "less_than_or_equal", -1, True),
        (3, "between", [3, 5], True),  # inclusive
        (5, "between", [3, 5], True),
        (5.01, "between", [3, 5], False),
        (2, "between", [2.5, 5], False),
        ([10], "greater_than", 5, False),
        (10**15 + 1, "greater_than", 10**15, True),
    ],
)
def test_number_operators(stored: Any, operator: str, operand: Any, expected: bool) -> None:
    assert trait(stored, operator, operand) is expected


def test_profile_number_fields() -> None:
    busy = make_profile(event_count=12, session_count=3)
    quiet = make_profile(event_count=0)
    leaf = {"property": "event_count", "operator": "greater_than", "value": 5}
    assert answer(leaf, busy) is True
    assert answer(leaf, quiet) is False
    assert answer({"property": "session_count", "operator": "between", "value": [1, 3]}, busy)


# --- booleans ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "is_true", "is_false"),
    [
        (True, True, False),
        (False, False, True),
        (1, False, False),
        ("true", False, False),
        (None, False, False),
        (_MISSING, False, False),
    ],
)
def test_boolean_operators(stored: Any, is_true: bool, is_false: bool) -> None:
    assert trait(stored, "is_true") is is_true
    assert trait(stored, "is_false") is is_false


def test_identified_field() -> None:
    known, anonymous = make_profile(identified=True), make_profile()
    assert answer({"property": "identified", "operator": "is_true"}, known)
    assert not answer({"property": "identified", "operator": "is_true"}, anonymous)
    assert answer({"property": "identified", "operator": "is_false"}, anonymous)


# --- dates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "operator", "operand", "expected"),
    [
        ("2025-01-01", "before", "2025-01-02", True),
        ("2025-01-02", "before", "2025-01-02", False),
        ("2025-01-01T23:59:59.999999Z", "before", "2025-01-02", True),
        ("2025-01-02T01:00:00+02:00", "before", "2025-01-02", True),  # 23:00 UTC the day before
        ("2025-01-02T10:00:00", "after", "2025-01-02", False),  # after a day: the next day on
        ("2025-01-03T00:00:00", "after", "2025-01-02", True),
        ("2025-01-02T10:00:00.000001", "after", "2025-01-02T10:00:00", True),
        ("2025-01-02 10:00:00", "after", "2025-01-02T10:00:00", False),
        ("2025-01-31T22:00:00Z", "between", ["2025-01-01", "2025-01-31"], True),  # whole days
        ("2025-02-01", "between", ["2025-01-01", "2025-01-31"], False),
        ("2025-01-01T10:00", "between", ["2025-01-01T10:00:00Z", "2025-01-01T11:00Z"], True),
        ("2025-02-30", "before", "2030-01-01", False),  # not a real date
        ("yesterday", "before", "2030-01-01", False),
        ("2025-01-01t10:00", "before", "2030-01-01", False),
        (20250101, "before", "2030-01-01", False),
        (_MISSING, "before", "2030-01-01", False),
        ("2025-05-30", "in_the_last", {"days": 7}, True),
        ("2025-05-20", "in_the_last", {"days": 7}, False),
        ("2025-06-01T10:30:00Z", "in_the_last", {"hours": 2}, True),
        ("2025-05-20", "not_in_the_last", {"days": 7}, True),
        ("2025-05-30", "not_in_the_last", {"weeks": 1}, False),
        (_MISSING, "not_in_the_last", {"days": 7}, True),
        ("garbage", "not_in_the_last", {"days": 7}, True),
        ("2024-02-29", "before", "2024-03-01", True),
        ("2023-02-29", "before", "2024-03-01", False),
    ],
)
def test_date_operators(stored: Any, operator: str, operand: Any, expected: bool) -> None:
    assert trait(stored, operator, operand) is expected


def test_profile_date_fields() -> None:
    recent = make_profile(last_seen=NOW - timedelta(days=2), first_seen=NOW - timedelta(days=90))
    never = make_profile()
    last_week = {"property": "last_seen", "operator": "in_the_last", "value": {"days": 7}}
    assert answer(last_week, recent) is True
    assert answer(last_week, never) is False
    assert answer({**last_week, "operator": "not_in_the_last"}, never) is True
    assert answer({"property": "first_seen", "operator": "before", "value": "2025-04-01"}, recent)
    assert answer({"property": "last_seen", "operator": "is_not_set"}, never)


# --- lists ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "operator", "operand", "expected"),
    [
        (["admin", "dev"], "any_in_list", ["admin"], True),
        (["admin", "dev"], "any_in_list", ["ops", "dev"], True),
        (["admin", "dev"], "any_in_list", ["ops"], False),
        (["admin", "dev"], "all_in_list", ["admin", "dev"], True),
        (["admin"], "all_in_list", ["admin", "dev"], False),
        (["admin"], "none_in_list", ["dev"], True),
        (["admin"], "none_in_list", ["admin"], False),
        (_MISSING, "none_in_list", ["admin"], True),
        (_MISSING, "any_in_list", ["admin"], False),
        ("pro", "any_in_list", ["pro", "team"], True),  # a scalar is a one-item list
        ("pro", "all_in_list", ["pro"], True),
        ("pro", "all_in_list", ["pro", "team"], False),
        ([1, 2], "any_in_list", [2.0], True),
        (["1"], "any_in_list", [1], False),
        ([True], "any_in_list", [1], False),
        ([1], "any_in_list", [True], False),
        ([True, False], "all_in_list", [True, False], True),
        ([["admin"]], "any_in_list", ["admin"], False),
        ({"admin": 1}, "any_in_list", ["admin"], False),
        ([None], "any_in_list", ["admin"], False),
    ],
)
def test_list_operators(stored: Any, operator: str, operand: Any, expected: bool) -> None:
    assert trait(stored, operator, operand) is expected


@pytest.mark.parametrize(
    ("stored", "item", "expected"),
    [
        (["a@x.com", "b@acme.com"], {"operator": "ends_with", "value": "@ACME.com"}, True),
        (["a@x.com"], {"operator": "ends_with", "value": "@acme.com"}, False),
        ("b@acme.com", {"operator": "ends_with", "value": "@acme.com"}, True),
        ([1, 20], {"operator": "greater_than", "value": 10}, True),
        (["20"], {"operator": "greater_than", "value": 10}, False),
        ([None, "x"], {"operator": "is_not_set"}, True),
        (["x"], {"operator": "is_not_set"}, False),
        ([], {"operator": "is_not", "value": "x"}, False),
        (_MISSING, {"operator": "is_not", "value": "x"}, False),
        (None, {"operator": "is_not", "value": "x"}, False),
        (["2025-05-31"], {"operator": "in_the_last", "value": {"days": 2}}, True),
        ({"a": "x"}, {"operator": "is", "value": "x"}, False),
    ],
)
def test_any_item(stored: Any, item: dict[str, Any], expected: bool) -> None:
    profile = make_profile({} if stored is _MISSING else {"emails": stored})
    leaf = {"property": "traits.emails", "operator": "any_item", "item": item}
    assert answer(leaf, profile) is expected


# --- paths ---------------------------------------------------------------------------------------


def test_nested_and_quoted_paths() -> None:
    profile = make_profile({"address": {"city": "Paris"}, "a.b": 1, "list": [{"city": "Rome"}]})
    assert answer({"property": "traits.address.city", "operator": "is", "value": "Paris"}, profile)
    assert answer({"property": 'traits."a.b"', "operator": "equals", "value": 1}, profile)
    # Paths walk objects only: a list is never indexed by a key such as "0".
    assert not answer({"property": "traits.list.0.city", "operator": "is_set"}, profile)
    assert not answer({"property": "traits.address.city.x", "operator": "is_set"}, profile)


def test_private_traits() -> None:
    profile = Profile.objects.create(private_traits={"email": "ann@acme.com"})
    Identity.objects.create(distinct_id="ann", profile=profile)
    leaf = {"property": "private_traits.email", "operator": "ends_with", "value": "@acme.com"}
    assert answer(leaf, profile) is True


def test_merged_profiles_never_match() -> None:
    survivor = make_profile({"plan": "pro"})
    merged = Profile.objects.create(traits={"plan": "pro"}, merged_into=survivor)
    filt = parse_filter({"property": "traits.plan", "operator": "is", "value": "pro"})
    assert list(profiles_matching(filt, now=NOW)) == [survivor]
    assert merged.pk not in set(profiles_matching(filt).values_list("pk", flat=True))


# --- groups --------------------------------------------------------------------------------------


def _join(profile: Profile, type_key: str, group_id: str, **properties: Any) -> None:
    group_type, _ = GroupType.objects.get_or_create(key=type_key)
    group = Group.objects.create(group_type=group_type, group_id=group_id, properties=properties)
    GroupMembership.objects.create(profile=profile, group=group)


def test_group_properties_and_membership() -> None:
    member = make_profile()
    _join(member, "company", "acme", tier="gold")
    _join(member, "company", "initech", tier="silver")
    loner = make_profile()
    tier = {"property": "groups.company.properties.tier", "operator": "is", "value": "gold"}
    assert answer(tier, member) is True
    assert answer(tier, loner) is False
    # Negated: true when one of the groups isn't gold, or when there's no company at all.
    assert answer({**tier, "operator": "is_not"}, member) is True
    assert answer({**tier, "operator": "is_not"}, loner) is True
    assert answer({"not": tier}, member) is False
    group_id = {"property": "groups.company.id", "operator": "is", "value": "initech"}
    assert answer(group_id, member) is True
    assert answer({"in_group": {"key": "company", "id": "acme"}}, member) is True
    assert answer({"in_group": {"key": "company", "id": "acme"}}, loner) is False
    assert answer({"in_group": {"key": "team", "id": "acme"}}, member) is False


# --- behaviour -----------------------------------------------------------------------------------


def test_performed_counts_events_of_all_identities(source: Any) -> None:
    profile = make_profile()
    other_id = Identity.objects.create(distinct_id="second-device", profile=profile)
    make_event(profile, source, timestamp=NOW - timedelta(days=5), properties={"amount": 50})
    Event.objects.create(
        source=source,
        message_id="other-device",
        event_name="purchase",
        distinct_id=other_id.distinct_id,
        timestamp=NOW - timedelta(days=3),
        received_at=NOW,
        properties={"amount": 5},
    )
    make_event(profile, source, timestamp=NOW - timedelta(days=40), properties={"amount": 500})
    twice = {"performed": "purchase", "at_least": 2, "within_days": 30}
    assert answer(twice, profile) is True
    assert answer({**twice, "at_least": 3}, profile) is False
    assert answer({"performed": "purchase", "at_least": 3}, profile) is True
    big = {"property": "event.properties.amount", "operator": "greater_than", "value": 10}
    assert answer({**twice, "where": big}, profile) is False
    assert answer({"performed": "purchase", "within_days": 30, "where": big}, profile) is True
    assert answer({"not_performed": "purchase", "within_days": 2}, profile) is True
    assert answer({"not_performed": "purchase", "within_days": 7}, profile) is False
    assert answer({"performed": "*", "at_least": 3}, profile) is True
    assert answer({"performed": "signup"}, profile) is False


def test_performed_accepts_events_given(source: Any) -> None:
    profile = make_profile()
    event = make_event(profile, source)
    filt = parse_filter({"performed": "purchase", "within_days": 7})
    assert evaluate(filt, profile=profile, now=NOW, events=[event]) is True
    assert evaluate(filt, profile=profile, now=NOW, events=[]) is False


def test_where_reads_event_fields_and_session(source: Any) -> None:
    from apps.events.models import Session

    profile = make_profile()
    session = Session.objects.create(
        source=source,
        distinct_id="x",
        key="s1",
        started_at=NOW,
        last_event_at=NOW,
        utm_source="google",
    )
    make_event(profile, source, category="commerce", session=session, context={"ip": "1.2.3.4"})
    make_event(profile, source, name="page_view")
    for where, expected in [
        ({"property": "event.category", "operator": "is", "value": "commerce"}, True),
        ({"property": "event.session.utm_source", "operator": "is", "value": "google"}, True),
        ({"property": "event.session.utm_medium", "operator": "is_not_set"}, True),
        ({"property": "event.context.ip", "operator": "starts_with", "value": "1.2."}, True),
        ({"property": "event.source", "operator": "is", "value": str(source.pk)}, True),
        ({"property": "event.source", "operator": "is_not", "value": str(source.pk)}, False),
        ({"property": "event.name", "operator": "any_in_list", "value": ["x", "purchase"]}, True),
        ({"property": "event.timestamp", "operator": "in_the_last", "value": {"hours": 1}}, False),
    ]:
        assert answer({"performed": "purchase", "where": where}, profile) is expected, where


def test_events_matching_agrees_with_evaluate(source: Any) -> None:
    pro = make_profile({"plan": "pro"})
    free = make_profile({"plan": "free"})
    big = make_event(pro, source, properties={"amount": 120})
    small = make_event(pro, source, properties={"amount": 3})
    other = make_event(free, source, properties={"amount": 500})
    orphan = Event.objects.create(
        source=source,
        message_id="orphan",
        event_name="purchase",
        distinct_id="nobody",
        timestamp=NOW,
        received_at=NOW,
        properties={"amount": 999},
    )
    filt = parse_filter(
        {
            "and": [
                {"property": "event.properties.amount", "operator": "greater_than", "value": 100},
                {"property": "traits.plan", "operator": "is_not", "value": "free"},
            ]
        },
        scope="event",
    )
    matched = set(events_matching(filt, now=NOW))
    assert matched == {big, orphan}
    owners = {big: pro, small: pro, other: free, orphan: None}
    for event, owner in owners.items():
        assert evaluate(filt, profile=owner, event=event, now=NOW) is (event in matched)


# --- segments ------------------------------------------------------------------------------------


def test_in_segment_reads_the_registered_resolver() -> None:
    from apps.segments.filtering import membership, set_segment_membership_resolver

    vip, other = make_profile(), make_profile()
    saved = dict(membership._resolvers)

    def members(key: str) -> Any:
        if key != "vip":
            raise LookupError(key)
        return Profile.objects.filter(pk=vip.pk).values("pk")

    set_segment_membership_resolver(
        members, lambda key, p: p.pk == vip.pk if key == "vip" else None
    )
    try:
        assert answer({"in_segment": "vip"}, vip) is True
        assert answer({"in_segment": "vip"}, other) is False
        assert answer({"not": {"in_segment": "vip"}}, other) is True
        with pytest.raises(Exception, match="unknown segment 'gone'"):
            answer({"in_segment": "gone"}, vip)
    finally:
        membership._resolvers.update(saved)
