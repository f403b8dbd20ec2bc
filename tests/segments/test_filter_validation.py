"""Bad filters: a FilterError (400, invalid_filter) that names the leaf, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from apps.segments.filtering import FilterError, parse_filter, profiles_matching

PLAN = {"property": "traits.plan", "operator": "is", "value": "pro"}


def error_for(data: Any, *, scope: str = "profile") -> FilterError:
    with pytest.raises(FilterError) as caught:
        parse_filter(data, scope=scope)
    error = caught.value
    assert error.status_code == 400
    assert error.code == "invalid_filter"
    assert error.as_dict()["error"]["code"] == "invalid_filter"
    return error


def nested(leaf: Any) -> dict[str, Any]:
    """`leaf` as the first child of an or, the second child of an and: leaf and[1].or[0]."""
    return {"and": [PLAN, {"or": [leaf, PLAN]}]}


@pytest.mark.parametrize(
    ("leaf", "reason"),
    [
        ({"property": "trait.plan", "operator": "is", "value": "x"}, "unknown path root"),
        ({"property": "traits", "operator": "is", "value": "x"}, "needs a key"),
        ({"property": "traits..plan", "operator": "is", "value": "x"}, "expected a name"),
        ({"property": 'traits."a', "operator": "is", "value": "x"}, "unclosed quote"),
        ({"property": "event_count.x", "operator": "equals", "value": 1}, "without keys"),
        ({"property": "groups.company", "operator": "is", "value": "x"}, "groups.<group type>"),
        ({"property": "traits.plan", "operator": "regex", "value": ".*"}, "unknown operator"),
        ({"property": "traits.plan", "operator": "is", "value": 5}, "expects a string"),
        ({"property": "traits.n", "operator": "greater_than", "value": "5"}, "expects a number"),
        ({"property": "traits.n", "operator": "equals", "value": True}, "expects a number"),
        ({"property": "traits.n", "operator": "between", "value": [5, 1]}, "low bound first"),
        ({"property": "traits.n", "operator": "between", "value": [1]}, "two bounds"),
        ({"property": "traits.n", "operator": "between", "value": [1, "2025-01-01"]}, "between"),
        ({"property": "traits.d", "operator": "before", "value": "2025-13-01"}, "malformed date"),
        ({"property": "traits.d", "operator": "before", "value": "2025-02-30"}, "malformed date"),
        ({"property": "traits.d", "operator": "after", "value": "01/02/2025"}, "malformed date"),
        ({"property": "traits.d", "operator": "in_the_last", "value": {"days": 0}}, "positive"),
        ({"property": "traits.d", "operator": "in_the_last", "value": {"years": 1}}, "unit"),
        ({"property": "traits.d", "operator": "in_the_last", "value": 7}, "one unit"),
        ({"property": "traits.d", "operator": "is_set", "value": 1}, "takes no value"),
        ({"property": "event_count", "operator": "contains", "value": "1"}, "does not apply"),
        ({"property": "last_seen", "operator": "greater_than", "value": 1}, "does not apply"),
        ({"property": "identified", "operator": "is", "value": "yes"}, "does not apply"),
        ({"property": "traits.p", "operator": "is", "value": "x" * 1001}, "at most 1000"),
        ({"property": "traits.p", "operator": "contains", "value": ""}, "non-empty"),
        ({"property": "traits.p", "operator": "contains", "value": "a\x00"}, "NUL"),
        ({"property": "traits.p", "operator": "any_in_list", "value": []}, "non-empty list"),
        ({"property": "traits.p", "operator": "any_in_list", "value": list(range(501))}, "500"),
        ({"property": "traits.p", "operator": "any_in_list", "value": [{"a": 1}]}, "list values"),
        ({"property": "traits.p", "operator": "any_item", "value": "x"}, "item condition"),
        (
            {"property": "traits.p", "operator": "any_item", "item": {"operator": "any_in_list"}},
            "unknown item operator",
        ),
        (
            {
                "property": "traits.p",
                "operator": "any_item",
                "item": {"operator": "greater_than", "value": "x"},
            },
            "expects a number",
        ),
        ({"property": "traits.p", "operator": "is", "value": "x", "extra": 1}, "unexpected key"),
        ({"property": "event.properties.x", "operator": "is_set"}, "needs an event in scope"),
        ({"performed": ""}, "event name"),
        ({"performed": "buy", "at_least": 0}, "at_least"),
        ({"performed": "buy", "within_days": "7"}, "within_days"),
        ({"not_performed": "buy", "at_least": 2}, "unexpected key"),
        ({"performed": "buy", "where": PLAN}, "where clause reads the performed event"),
        ({"in_segment": "no spaces"}, "segment key"),
        ({"in_group": {"key": "company"}}, "in_group"),
        ({"nonsense": 1}, "unknown condition"),
        ("traits.plan", "JSON object"),
        ({"and": []}, "non-empty list"),
    ],
)
def test_bad_leaf_is_named(leaf: Any, reason: str) -> None:
    error = error_for(nested(leaf))
    # The leaf itself, or the clause inside it that is wrong (and[1].or[0].where).
    assert error.leaf.startswith("and[1].or[0]")
    assert reason in error.message
    assert error.message.startswith(f"at {error.leaf}: ")


def test_where_clause_leaves_are_named() -> None:
    leaf = {
        "performed": "buy",
        "where": {"and": [{"property": "event.properties.x", "operator": "equals", "value": "x"}]},
    }
    assert error_for({"not": leaf}).leaf == "not.where.and[0]"


def test_event_paths_in_event_scope() -> None:
    leaf = {"property": "event.properties.amount", "operator": "greater_than", "value": 5}
    assert parse_filter(leaf, scope="event").tree == leaf
    assert error_for(leaf, scope="profile").leaf == ""
    with pytest.raises(ValueError, match="scope"):
        parse_filter(leaf, scope="everything")


def test_too_deep() -> None:
    tree: dict[str, Any] = PLAN
    for _ in range(25):
        tree = {"not": tree}
    error = error_for(tree)
    assert "deeper than 20" in error.message
    assert error.leaf == ".".join(["not"] * 20)


def test_too_many_leaves() -> None:
    error = error_for({"or": [{"and": [PLAN] * 100}, {"and": [PLAN] * 101}]})
    assert "at most 200 conditions" in error.message
    assert error.leaf == "or[1].and[100]"


def test_no_regex_operator_and_wildcards_are_literal(db: None) -> None:
    # No regex operator exists; LIKE metacharacters in values are escaped, so a "pattern"
    # costs what a plain substring search costs.
    filt = parse_filter({"property": "traits.p", "operator": "contains", "value": "%_%" * 300})
    assert list(profiles_matching(filt)) == []
    assert "regex" in error_for({"property": "traits.p", "operator": "regex", "value": "a"}).message


def test_in_segment_without_resolver_is_unknown(db: None) -> None:
    from apps.segments.filtering import membership

    saved = dict(membership._resolvers)
    membership.set_segment_membership_resolver(None, None)
    try:
        filt = parse_filter({"and": [PLAN, {"in_segment": "vip"}]})
        with pytest.raises(FilterError, match="unknown segment 'vip'") as caught:
            profiles_matching(filt)
        assert caught.value.leaf == "and[1]"
    finally:
        membership._resolvers.update(saved)


def test_normalized_tree() -> None:
    filt = parse_filter({"and": [{"property": 'traits."plan"', "operator": "is", "value": "pro"}]})
    assert filt.tree == PLAN
    assert parse_filter({"performed": "x", "at_least": 1}).tree == {"performed": "x"}
    source = "0B5B6F3C-9B0E-4C11-9C6B-2D7E9F6B8A01"
    leaf = {"property": "event.source", "operator": "is", "value": source}
    assert parse_filter(leaf, scope="event").tree["value"] == source.lower()
    assert "not a source id" in error_for({**leaf, "value": "abc"}, scope="event").message


def test_references() -> None:
    filt = parse_filter(
        {
            "and": [
                {"property": "traits.address.city", "operator": "is", "value": "Paris"},
                {"property": "private_traits.email", "operator": "is_set"},
                {"property": "last_seen", "operator": "in_the_last", "value": {"days": 7}},
                {"property": "groups.company.properties.tier", "operator": "is", "value": "a"},
                {
                    "performed": "purchase",
                    "where": {"property": "event.properties.a", "operator": "equals", "value": 1},
                },
                {"not": {"in_segment": "vip"}},
                {"in_group": {"key": "team", "id": "core"}},
            ]
        }
    )
    refs = filt.references
    assert refs.profile_fields == {"last_seen"}
    assert refs.trait_keys == {"address", "email"}
    assert refs.event_names == {"purchase"}
    assert refs.any_event is False
    assert refs.segments == {"vip"}
    assert refs.groups == {"company", "team"}
    assert refs.time_based is True
    plain = parse_filter({"performed": "*"}).references
    assert plain.any_event is True
    assert plain.time_based is False
    assert parse_filter({"not_performed": "x"}).references.time_based is True
    assert parse_filter({"performed": "x", "within_days": 3}).references.time_based is True
