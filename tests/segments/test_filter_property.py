"""Property-based: on random profiles, events and filters, the SQL and in-memory evaluators
agree on every profile (and every event, for event filters). Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.events.models import Event
from apps.profiles.models import Group, GroupMembership, GroupType, Identity, Profile
from apps.segments.filtering import (
    evaluate,
    events_matching,
    parse_filter,
    profiles_matching,
    to_text,
)
from apps.segments.filtering.text import parse_text
from apps.segments.models import ProfileScore, ScoreDefinition
from apps.sources.models import EventSource

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
_ids = itertools.count()

# --- stored values --------------------------------------------------------------------------------

STRINGS = [
    "",
    "pro",
    "Pro",
    "PRO",
    "pr",
    "o",
    "10",
    "5",
    "-1.5",
    "true",
    "null",
    "2025-05-30",
    "2025-05-31T10:00:00+02:00",
    "2025-01-01T00:00:00Z",
    "2025-05-31 23:59:59.5",
    "2024-02-30",
    "2025-13-01",
    "2025-05-30t10:00",
    "München",
    "MÜNCHEN",
    "ü",
    "straße",
    "ΑΘΗΝΑ",
    "αθηνα",
    "a%b",
    "a_b",
    "%",
    "_",
    "x\\y",
    "@acme.com",
    "bob@ACME.com",
]
NUMBERS = [0, 1, 5, 10, -1, -1.5, 0.1, 2.5, 10.0, 1e-7, 123456789]
DATES = ["2025-05-30", "2025-05-31T10:00:00+02:00", "2025-01-01", "2025-05-31T23:59:59Z"]

text = st.one_of(
    st.sampled_from(STRINGS),
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=4),
)
number = st.one_of(st.sampled_from(NUMBERS), st.integers(-20, 20))
scalar = st.one_of(text, number, st.booleans(), st.none())
json_value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "x.y"]), inner, max_size=3),
    ),
    max_leaves=6,
)
KEYS = ["a", "b", "x.y", "o"]
traits = st.dictionaries(st.sampled_from(KEYS), json_value, max_size=4)
maybe_time = st.one_of(
    st.none(), st.integers(0, 90).map(lambda d: NOW - timedelta(days=d, hours=d))
)
profile_rows = st.fixed_dictionaries(
    {
        "traits": traits,
        "private_traits": st.dictionaries(st.sampled_from(["email"]), scalar, max_size=1),
        "event_count": st.integers(0, 12),
        "session_count": st.integers(0, 3),
        "identified": st.booleans(),
        "first_seen": maybe_time,
        "last_seen": maybe_time,
        # Predictive scores as scoring writes them: 0..1 with at most 6 decimals.
        "scores": st.dictionaries(
            st.sampled_from(["buy_7d", "churn"]),
            st.one_of(
                st.sampled_from([0.0, 1.0, 0.5, 0.7, 0.1, 0.25]),
                st.integers(0, 1_000_000).map(lambda n: round(n / 1_000_000, 6)),
            ),
            max_size=2,
        ),
    }
)
event_rows = st.fixed_dictionaries(
    {
        "owner": st.integers(0, 3),
        "name": st.sampled_from(["buy", "view", "signup"]),
        "days_ago": st.floats(0, 40),
        "properties": st.dictionaries(st.sampled_from(["a", "b", "x.y"]), json_value, max_size=3),
        "category": st.sampled_from(["custom", "commerce"]),
    }
)
group_rows = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from(["acme", "initech"]), traits), max_size=3
)

# --- filters --------------------------------------------------------------------------------------

STRING_OPS = ["is", "is_not", "contains", "not_contains", "starts_with", "ends_with"]
NUMBER_OPS = [
    "equals",
    "not_equals",
    "greater_than",
    "greater_than_or_equal",
    "less_than",
    "less_than_or_equal",
]
list_value = st.lists(
    st.one_of(st.sampled_from(STRINGS), number, st.booleans()), min_size=1, max_size=3
)
duration = st.one_of(
    st.integers(1, 40).map(lambda n: {"days": n}), st.integers(1, 72).map(lambda n: {"hours": n})
)


def _sorted_pair(values: st.SearchStrategy[Any], key: Any = None) -> st.SearchStrategy[list[Any]]:
    return st.tuples(values, values).map(lambda p: sorted(p, key=key))


def _date_key(value: str) -> datetime:
    from apps.segments.filtering.operators import date_bound

    return date_bound(value).start


def scalar_operation() -> st.SearchStrategy[dict[str, Any]]:
    """An operator and its value, for any JSON path (or an any_item item)."""
    return st.one_of(
        st.builds(
            lambda o: {"operator": o},
            st.sampled_from(["is_set", "is_not_set", "is_true", "is_false"]),
        ),
        st.builds(
            lambda o, v: {"operator": o, "value": v},
            st.sampled_from(STRING_OPS),
            st.sampled_from([s for s in STRINGS if s]),
        ),
        st.builds(lambda o, v: {"operator": o, "value": v}, st.sampled_from(NUMBER_OPS), number),
        st.builds(lambda v: {"operator": "between", "value": v}, _sorted_pair(number)),
        st.builds(
            lambda v: {"operator": "between", "value": v},
            _sorted_pair(st.sampled_from(DATES), _date_key),
        ),
        st.builds(
            lambda o, v: {"operator": o, "value": v},
            st.sampled_from(["before", "after"]),
            st.sampled_from(DATES),
        ),
        st.builds(
            lambda o, v: {"operator": o, "value": v},
            st.sampled_from(["in_the_last", "not_in_the_last"]),
            duration,
        ),
    )


def operation() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        scalar_operation(),
        st.builds(
            lambda o, v: {"operator": o, "value": v},
            st.sampled_from(["any_in_list", "all_in_list", "none_in_list"]),
            list_value,
        ),
        st.builds(lambda item: {"operator": "any_item", "item": item}, scalar_operation()),
    )


def json_leaf(paths: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda p, op: {"property": p, **op}, st.sampled_from(paths), operation())


TRAIT_PATHS = [
    "traits.a",
    "traits.b",
    'traits."x.y"',
    "traits.o.a",
    "traits.o.x",
    "traits.a.b",
    "private_traits.email",
    "groups.company.properties.a",
    "groups.company.properties.o.b",
]
EVENT_PATHS = [
    "event.properties.a",
    "event.properties.b",
    'event.properties."x.y"',
    "event.properties.a.b",
]

column_leaf = st.one_of(
    st.builds(
        lambda o, v: {"property": "event_count", "operator": o, "value": v},
        st.sampled_from(NUMBER_OPS),
        st.integers(0, 12),
    ),
    st.builds(
        lambda o: {"property": "identified", "operator": o},
        st.sampled_from(["is_true", "is_false", "is_set"]),
    ),
    st.builds(
        lambda p, o, v: {"property": p, "operator": o, "value": v},
        st.sampled_from(["first_seen", "last_seen"]),
        st.sampled_from(["in_the_last", "not_in_the_last"]),
        duration,
    ),
    st.builds(
        lambda p, o, v: {"property": p, "operator": o, "value": v},
        st.sampled_from(["first_seen", "last_seen"]),
        st.sampled_from(["before", "after"]),
        st.sampled_from(DATES),
    ),
    st.builds(
        lambda p: {"property": p, "operator": "is_not_set"},
        st.sampled_from(["first_seen", "last_seen"]),
    ),
    st.builds(
        lambda v: {"property": "groups.company.id", "operator": "is", "value": v},
        st.sampled_from(["acme", "initech"]),
    ),
    st.builds(
        lambda v: {"in_group": {"key": "company", "id": v}}, st.sampled_from(["acme", "initech"])
    ),
)

score_bound = st.one_of(st.sampled_from([0, 1, 0.5, 0.7, 0.1, 0.25, -1, 2]), number)
# `none` has no definition: a score nobody has is missing for every profile.
SCORE_PATHS = ["scores.buy_7d", "scores.churn", "scores.none"]
score_leaf = st.one_of(
    st.builds(
        lambda p, o, v: {"property": p, "operator": o, "value": v},
        st.sampled_from(SCORE_PATHS),
        st.sampled_from(NUMBER_OPS),
        score_bound,
    ),
    st.builds(
        lambda p, v: {"property": p, "operator": "between", "value": v},
        st.sampled_from(SCORE_PATHS),
        _sorted_pair(score_bound),
    ),
    st.builds(
        lambda p, o: {"property": p, "operator": o},
        st.sampled_from(SCORE_PATHS),
        st.sampled_from(["is_set", "is_not_set"]),
    ),
)

event_column_leaf = st.one_of(
    st.builds(
        lambda v: {"property": "event.name", "operator": "is", "value": v},
        st.sampled_from(["buy", "view"]),
    ),
    st.builds(
        lambda v: {"property": "event.category", "operator": "is_not", "value": v},
        st.sampled_from(["custom", "commerce"]),
    ),
    st.builds(
        lambda v: {"property": "event.timestamp", "operator": "in_the_last", "value": v}, duration
    ),
)


def combine(leaves: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda c: {"and": c}),
            st.lists(inner, min_size=1, max_size=3).map(lambda c: {"or": c}),
            inner.map(lambda c: {"not": c}),
        ),
        max_leaves=5,
    )


where_clause = combine(st.one_of(json_leaf(EVENT_PATHS), event_column_leaf))


@st.composite
def behaviour(draw: Any) -> dict[str, Any]:
    negated = draw(st.booleans())
    node: dict[str, Any] = {
        "not_performed" if negated else "performed": draw(st.sampled_from(["buy", "view", "*"]))
    }
    if not negated and draw(st.booleans()):
        node["at_least"] = draw(st.integers(1, 3))
    if draw(st.booleans()):
        node["within_days"] = draw(st.integers(1, 30))
    if draw(st.booleans()):
        node["where"] = draw(where_clause)
    return node


profile_filters = combine(st.one_of(json_leaf(TRAIT_PATHS), column_leaf, score_leaf, behaviour()))
event_filters = combine(
    st.one_of(
        json_leaf(TRAIT_PATHS),
        json_leaf(EVENT_PATHS),
        event_column_leaf,
        column_leaf,
        score_leaf,
        behaviour(),
    )
)


# --- the world ------------------------------------------------------------------------------------


def build(
    profiles: list[dict[str, Any]], events: list[dict[str, Any]], groups: list[Any]
) -> tuple[list[Profile], list[Event]]:
    source = EventSource.objects.create(name="s")
    made = []
    definitions = {
        name: ScoreDefinition.objects.create(name=name, target_event="buy")
        for name in ("buy_7d", "churn")
    }
    for row in profiles:
        row = dict(row)
        scores = row.pop("scores")
        profile = Profile.objects.create(**row)
        ProfileScore.objects.bulk_create(
            ProfileScore(definition=definitions[name], profile=profile, value=value)
            for name, value in scores.items()
        )
        Identity.objects.create(distinct_id=f"p{next(_ids)}", profile=profile)
        Identity.objects.create(distinct_id=f"p{next(_ids)}", profile=profile)
        made.append(profile)
    company, _ = GroupType.objects.get_or_create(key="company")
    for owner, group_id, properties in groups:
        group, _ = Group.objects.get_or_create(group_type=company, group_id=group_id)
        group.properties = properties
        group.save()
        GroupMembership.objects.get_or_create(profile=made[owner % len(made)], group=group)
    stored = []
    for i, row in enumerate(events):
        # Events of an unknown distinct_id (no profile) too, for event filters.
        owner = row["owner"]
        ids = sorted(made[owner % len(made)].identities.values_list("distinct_id", flat=True))
        distinct_id = ids[i % 2] if owner < 3 else f"stranger{next(_ids)}"
        stored.append(
            Event.objects.create(
                source=source,
                message_id=f"e{next(_ids)}",
                event_name=row["name"],
                distinct_id=distinct_id,
                category=row["category"],
                timestamp=NOW - timedelta(days=row["days_ago"]),
                received_at=NOW,
                properties=row["properties"],
            )
        )
    return made, stored


def _round_trip(tree: dict[str, Any]) -> None:
    assert parse_text(to_text(tree)) == tree


@pytest.mark.django_db
# More examples than the suite's default: this test is the evaluators' contract.
@settings(max_examples=150)
@given(
    profiles=st.lists(profile_rows, min_size=1, max_size=4),
    events=st.lists(event_rows, max_size=8),
    groups=group_rows,
    data=profile_filters,
)
def test_sql_and_memory_agree_on_profiles(
    profiles: list[dict[str, Any]], events: list[dict[str, Any]], groups: Any, data: Any
) -> None:
    filt = parse_filter(data)
    _round_trip(filt.tree)
    with transaction.atomic():
        made, _ = build(profiles, events, groups)
        in_sql = set(profiles_matching(filt, now=NOW).values_list("pk", flat=True))
        for profile in made:
            in_memory = evaluate(filt, profile=profile, now=NOW)
            assert (profile.pk in in_sql) == in_memory, (
                f"{connection.vendor}: SQL {profile.pk in in_sql}, memory {in_memory}\n"
                f"filter: {to_text(filt.tree)}\ntraits: {profile.traits}"
            )
        transaction.set_rollback(True)


@pytest.mark.django_db
# More examples than the suite's default: this test is the evaluators' contract.
@settings(max_examples=150)
@given(
    profiles=st.lists(profile_rows, min_size=1, max_size=3),
    events=st.lists(event_rows, min_size=1, max_size=8),
    groups=group_rows,
    data=event_filters,
)
def test_sql_and_memory_agree_on_events(
    profiles: list[dict[str, Any]], events: list[dict[str, Any]], groups: Any, data: Any
) -> None:
    filt = parse_filter(data, scope="event")
    _round_trip(filt.tree)
    with transaction.atomic():
        _, stored = build(profiles, events, groups)
        in_sql = set(events_matching(filt, now=NOW).values_list("pk", flat=True))
        owners = dict(Identity.objects.values_list("distinct_id", "profile"))
        for event in stored:
            owner_id = owners.get(event.distinct_id)
            owner = Profile.objects.get(pk=owner_id) if owner_id else None
            in_memory = evaluate(filt, profile=owner, event=event, now=NOW)
            assert (event.pk in in_sql) == in_memory, (
                f"{connection.vendor}: SQL {event.pk in in_sql}, memory {in_memory}\n"
                f"filter: {to_text(filt.tree)}\nproperties: {event.properties}"
            )
        transaction.set_rollback(True)
