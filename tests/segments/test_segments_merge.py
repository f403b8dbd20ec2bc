"""Merges carry memberships to the surviving profile (the union); an unmerge undoes that."""

from __future__ import annotations

from django.test import TestCase

from apps.profiles import services as profile_services
from apps.segments import services
from apps.segments.models import Segment, SegmentMembership
from tests.factories import PRO, members, profile_of


def _add(key, *distinct_ids):
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.segment_members_add(
            segment=Segment.objects.get(key=key), distinct_ids=list(distinct_ids)
        )


def test_identify_merge_carries_memberships(people, make_segment):
    make_segment("vip", kind="static")
    make_segment("newsletter", kind="static")
    people.track("anon-1")
    people.identify("user-1", traits={"plan": "free"})
    _add("vip", "anon-1")
    _add("newsletter", "anon-1", "user-1")
    anon_stay = SegmentMembership.objects.get(segment__key="vip")

    people.identify("user-1", "anon-1")  # the anonymous profile merges into the known one

    survivor = profile_of("user-1")
    assert profile_of("anon-1") == survivor
    current = SegmentMembership.objects.filter(profile=survivor, exited_at__isnull=True)
    assert {m.segment.key for m in current} == {"vip", "newsletter"}
    vip = current.get(segment__key="vip")
    assert vip.entered_at == anon_stay.entered_at  # the person was in since then
    assert SegmentMembership.objects.filter(exited_at__isnull=True).count() == 2
    assert Segment.objects.get(key="newsletter").member_count == 1
    assert Segment.objects.get(key="vip").member_count == 1


def test_dynamic_segments_are_reevaluated_for_the_survivor(people, make_segment, api_client):
    make_segment("pro", PRO)
    people.people("a", set={"plan": "free"})
    people.people("b", set={"plan": "pro"})
    assert members("pro") == {"b"}
    a, b = profile_of("a"), profile_of("b")

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = api_client.post(
            f"/api/v1/profiles/{a.pk}/merge", {"other_profile": str(b.pk)}, format="json"
        )
    assert response.status_code == 201

    # b's stay moved to a, and a (now with b's later "pro") still qualifies.
    assert members("pro") == {"a"}
    assert SegmentMembership.objects.get(segment__key="pro", exited_at__isnull=True).profile == a


def test_unmerge_gives_memberships_back(people, make_segment):
    make_segment("vip", kind="static")
    people.people("a", set={"plan": "x"})
    people.people("b", set={"plan": "y"})
    _add("vip", "b")
    a, b = profile_of("a"), profile_of("b")
    with TestCase.captureOnCommitCallbacks(execute=True):
        merge = profile_services.profile_merge(survivor=a, merged=b, trigger="api")
    assert merge is not None
    assert members("vip") == {"a"}

    with TestCase.captureOnCommitCallbacks(execute=True):
        profile_services.profile_unmerge(merge=merge)

    assert members("vip") == {"b"}
    assert Segment.objects.get(key="vip").member_count == 1
