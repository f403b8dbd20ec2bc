"""A group's own properties changing re-evaluates, for its members, the segments that read the
group's type, at once (after the commit), without waiting for the periodic recompute."""

from __future__ import annotations

from typing import Any

import pytest

from apps.profiles.models import Group
from apps.segments import services
from apps.segments.services import realtime, recompute
from tests.factories import PRO, members, segment_events

GOLD = {"property": "groups.company.properties.tier", "operator": "is", "value": "gold"}


@pytest.fixture
def groups(people):
    class Groups:
        def join(self, distinct_id: str, group_id: str, group_key: str = "company") -> None:
            people._ok(
                {"distinct_id": distinct_id, "group_key": group_key, "group_id": group_id},
                "/api/groups",
            )

        def set(self, group_id: str, group_key: str = "company", **properties: Any) -> None:
            people._ok(
                {"group_key": group_key, "group_id": group_id, "set": properties},
                "/api/groups/properties",
            )

    return Groups()


@pytest.fixture
def evaluated(monkeypatch) -> list[str]:
    """The keys of the segments evaluated in memory from now on."""
    seen: list[str] = []
    real = realtime._evaluate
    monkeypatch.setattr(
        realtime,
        "_evaluate",
        lambda segment, *args: seen.append(segment.key) or real(segment, *args),
    )
    return seen


def _forbid_recompute(monkeypatch) -> None:
    """From now on, the set-wise recompute (what the periodic task runs) fails the test."""

    def fail(**kwargs: Any) -> None:
        raise AssertionError("the set-wise recompute ran")

    monkeypatch.setattr(services, "segment_recompute", fail)
    monkeypatch.setattr(recompute, "segment_recompute", fail)


def test_group_properties_make_members_enter_then_exit(
    people, groups, make_segment, evaluated, monkeypatch
):
    make_segment("gold", GOLD, name="Gold")
    make_segment("pro", PRO)  # reads no group
    groups.join("ann", "acme")
    groups.join("bob", "acme")
    groups.join("cat", "initech")
    assert members("gold") == set()
    _forbid_recompute(monkeypatch)
    evaluated.clear()

    groups.set("acme", tier="gold")

    assert members("gold") == {"ann", "bob"}
    assert sorted(e.distinct_id for e in segment_events("segment_entered", "gold")) == [
        "ann",
        "bob",
    ]
    assert sorted(evaluated) == ["gold", "gold"]  # each member once; "pro" not at all

    groups.set("acme", tier="silver")

    assert members("gold") == set()
    assert sorted(e.distinct_id for e in segment_events("segment_exited", "gold")) == [
        "ann",
        "bob",
    ]


def test_only_segments_reading_that_group_type_are_evaluated(
    people, groups, make_segment, evaluated
):
    make_segment("gold", GOLD)
    make_segment("blue-team", {"in_group": {"key": "team", "id": "blue"}})
    make_segment("pro", PRO)
    groups.join("ann", "acme")
    groups.join("ann", "blue", group_key="team")
    evaluated.clear()

    groups.set("acme", tier="gold")

    assert evaluated == ["gold"]
    assert members("gold") == {"ann"}


def test_segments_naming_a_group_segment_follow_it(people, groups, make_segment):
    make_segment("gold", GOLD)
    make_segment("gold-pro", {"and": [{"in_segment": "gold"}, PRO]})
    people.people("ann", set={"plan": "pro"})
    groups.join("ann", "acme")

    groups.set("acme", tier="gold")

    assert members("gold-pro") == {"ann"}


def test_unchanged_properties_queue_nothing(people, groups, make_segment, evaluated):
    make_segment("gold", GOLD)
    groups.join("ann", "acme")
    groups.set("acme", tier="gold")
    evaluated.clear()

    groups.set("acme", tier="gold")

    assert evaluated == []


def test_group_event_traits_reevaluate_the_other_members(people, groups, make_segment):
    make_segment("gold", GOLD)
    groups.join("ann", "acme")

    people.track(
        "bob", "$group", group_key="company", group_id="acme", **{"$group_set": {"tier": "gold"}}
    )

    assert members("gold") == {"ann", "bob"}


def test_above_the_cap_the_periodic_recompute_catches_up(
    people, groups, make_segment, monkeypatch, caplog
):
    make_segment("gold", GOLD)
    groups.join("ann", "acme")
    groups.join("bob", "acme")
    monkeypatch.setattr(realtime, "GROUP_REEVALUATE_MAX", 1)

    groups.set("acme", tier="gold")

    assert members("gold") == set()
    assert "left to the periodic recompute" in caplog.text
    services.segments_recompute_all()
    assert members("gold") == {"ann", "bob"}


def test_chunks_cover_every_member(people, groups, make_segment, monkeypatch):
    make_segment("gold", GOLD)
    for name in ("ann", "bob", "cat"):
        groups.join(name, "acme")
    monkeypatch.setattr(realtime, "GROUP_REEVALUATE_CHUNK", 2)

    groups.set("acme", tier="gold")

    assert members("gold") == {"ann", "bob", "cat"}
    assert Group.objects.get(group_id="acme").properties == {"tier": "gold"}
