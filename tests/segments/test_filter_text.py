"""The text form: parsing, printing, the round trip, and errors that point at the position."""

from __future__ import annotations

from typing import Any

import pytest

from apps.segments.filtering import FilterError, parse_filter, parse_text, to_text

EXAMPLE = (
    'traits.plan is "pro" and (event_count greater_than 5 or traits.roles any_in_list ["admin"])'
)


def test_issue_example() -> None:
    assert parse_text(EXAMPLE) == {
        "and": [
            {"property": "traits.plan", "operator": "is", "value": "pro"},
            {
                "or": [
                    {"property": "event_count", "operator": "greater_than", "value": 5},
                    {"property": "traits.roles", "operator": "any_in_list", "value": ["admin"]},
                ]
            },
        ]
    }
    assert to_text(parse_text(EXAMPLE)) == EXAMPLE


@pytest.mark.parametrize(
    "text",
    [
        EXAMPLE,
        'performed "purchase" at_least 2 within_days 30 where '
        '(event.properties.amount greater_than 10.5 and event.session.utm_source is "google")',
        'not_performed any within_days 7 and in_segment "vip-users"',
        'in_group company "acme" or in_group "team x" "core"',
        'not (last_seen in_the_last 3 days or first_seen before "2025-01-01")',
        'not traits.a is_set and traits."a.b".c is "x"',
        'traits.emails any_item ends_with "@acme.com" and traits.tags none_in_list [1, true, "x"]',
        'traits.n between [1, 2.5] and traits.d between ["2025-01-01", "2025-02-01T10:00:00Z"]',
        'traits.s is "quote \\" and unicode é 名前" and traits.b is_false',
        "traits.n equals -1e-07 and traits.m not_equals 0",
        "(traits.a is_set or traits.b is_set) and (traits.c is_set or traits.d is_set)",
        "not not traits.a is_set",
        'event.properties.x contains "a" and event.name is "buy"',
    ],
)
def test_round_trip(text: str) -> None:
    tree = parse_text(text)
    assert parse_text(to_text(tree)) == tree
    assert to_text(tree) == text
    assert parse_filter(tree, scope="event").tree == tree


def test_precedence_and_units() -> None:
    # and binds tighter than or; singular units are accepted and printed in the plural.
    tree = parse_text("traits.a is_set or traits.b is_set and last_seen in_the_last 1 day")
    assert tree == {
        "or": [
            {"property": "traits.a", "operator": "is_set"},
            {
                "and": [
                    {"property": "traits.b", "operator": "is_set"},
                    {"property": "last_seen", "operator": "in_the_last", "value": {"days": 1}},
                ]
            },
        ]
    }
    assert to_text(tree) == (
        "traits.a is_set or (traits.b is_set and last_seen in_the_last 1 days)"
    )


def test_to_text_normalizes() -> None:
    tree: dict[str, Any] = {"and": [{"property": 'traits."plan"', "operator": "is", "value": "x"}]}
    assert to_text(tree) == 'traits.plan is "x"'
    with pytest.raises(FilterError):
        to_text({"property": "nope.x", "operator": "is", "value": "x"})


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ('traits.plan is "pro" and', 24, "expected a condition"),
        ('traits.plan is "pro" and (event_count greater_than 5', 52, "expected ')'"),
        ('traits.plan is "pro" traits.x is_set', 21, "expected and, or"),
        ("traits.plan is", 14, "expected a value"),
        ('traits.plan is "pro" and traits.x frobnicate 5', 34, "unknown operator 'frobnicate'"),
        ("traits.plan is 'pro'", 15, "unexpected character"),
        ('traits.plan is "unterminated', 15, "unexpected character"),
        ('traits.plan is "bad \\q escape"', 15, "bad escape"),
        ("last_seen in_the_last 7 fortnights", 24, "a unit"),
        ("last_seen in_the_last days", 22, "a duration"),
        ("performed purchase", 10, "an event name"),
        ('performed "x" at_least 1.5', 23, "whole number"),
        ('performed "x" where event.name is "y"', 20, "'(' after where"),
        ("in_group company acme", 17, "group id"),
        ("traits.tags any_in_list [1, 2", 29, "',' or ']'"),
        # Validation errors point at the condition they name.
        ('traits.plan is "pro" and trait.x is "y"', 25, "unknown path root"),
        (
            'traits.a is_set and (traits.b is_set or traits.n greater_than "5")',
            40,
            "expects a number",
        ),
        ('traits.d before "2025-02-30" or traits.x is_set', 0, "malformed date"),
        ('performed "x" where (traits.plan is "a")', 21, "where clause"),
        (
            'performed "x" where (event.properties.a is_set and event.nope is "a")',
            51,
            "unknown event field",
        ),
    ],
)
def test_error_positions(text: str, position: int, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_text(text)
    assert caught.value.position == position, caught.value.message
    assert message in caught.value.message
    assert caught.value.code == "invalid_filter"


def test_where_error_position_points_into_the_clause() -> None:
    text = 'performed "x" where (event.properties.a is_set and event.nope is "a")'
    with pytest.raises(FilterError) as caught:
        parse_text(text)
    assert caught.value.leaf == "where.and[1]"
