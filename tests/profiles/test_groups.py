"""Groups: membership through /api/groups and events, properties, and the group API."""

from __future__ import annotations

import pytest

from apps.profiles.models import Group
from tests.factories import profile_of


def _groups_of(api_client, distinct_id):
    detail = api_client.get(f"/api/v1/profiles/{profile_of(distinct_id).pk}").json()
    return sorted(f"{g['group_key']}:{g['group_id']}" for g in detail["groups"])


def test_add_set_and_remove_membership(send, api_client):
    send.group("user-1", "company", "acme")
    send.group("user-1", "company", "globex", action="add")
    send.group("user-1", "team", "blue")
    assert _groups_of(api_client, "user-1") == ["company:acme", "company:globex", "team:blue"]

    send.group("user-1", "company", "initech", action="set")  # replaces the other companies
    assert _groups_of(api_client, "user-1") == ["company:initech", "team:blue"]

    send.group("user-1", "team", "blue", action="remove")
    assert _groups_of(api_client, "user-1") == ["company:initech"]


def test_group_properties_set_set_once_unset(tracker):
    def post(**payload):
        response = tracker.post(
            {"group_key": "company", "group_id": "acme", **payload}, path="/api/groups/properties"
        )
        assert response.status_code == 200, response.content
        return response.json()

    post(set={"plan": "pro", "seats": 10}, set_once={"founded": 1999})
    post(set={"plan": "enterprise"}, set_once={"founded": 2005, "country": "NL"})
    body = post(unset=["seats"])

    expected = {"plan": "enterprise", "founded": 1999, "country": "NL"}
    assert body["properties"] == expected
    assert Group.objects.get(group_id="acme").properties == expected


def test_events_carrying_groups_join_them(send, api_client):
    send.track("user-1", **{"$groups": {"company": "acme", "workspace": 42}})
    send.track("user-2", **{"$groups": {"company": "acme"}})

    assert _groups_of(api_client, "user-1") == ["company:acme", "workspace:42"]
    groups = api_client.get("/api/v1/groups?group_type__key=company").json()["results"]
    assert [(g["group_key"], g["group_id"]) for g in groups] == [("company", "acme")]
    members = api_client.get(f"/api/v1/groups/{groups[0]['id']}/members")
    assert members.status_code == 200
    member_ids = {m["id"] for m in members.json()["results"]}
    assert member_ids == {str(profile_of("user-1").pk), str(profile_of("user-2").pk)}


def test_group_list_and_members_follow_merges(send, api_client):
    send.group("anon-1", "company", "acme")
    send.group("user-1", "company", "acme")
    send.identify("user-1", "anon-1")

    group = api_client.get("/api/v1/groups").json()["results"][0]
    assert group["group_key"] == "company"
    members = api_client.get(f"/api/v1/groups/{group['id']}/members").json()["results"]
    assert [m["id"] for m in members] == [str(profile_of("user-1").pk)]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"group_key": "Company X", "group_id": "acme"}, "group_key"),
        ({"group_key": "", "group_id": "acme"}, "group_key"),
        ({"group_key": 5, "group_id": "acme"}, "group_key"),
        ({"group_id": "acme"}, "group_key"),
        ({"group_key": "company"}, "group_id"),
        ({"group_key": "company", "group_id": "acme", "action": "join"}, "action"),
    ],
)
def test_bad_group_calls_are_a_400_naming_the_field(tracker, payload, field):
    response = tracker.post({"distinct_id": "user-1", **payload}, path="/api/groups")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert Group.objects.count() == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"group_key": "Bad Key!", "group_id": "acme", "set": {"a": 1}}, "group_key"),
        ({"group_key": "company", "group_id": "acme", "set": [1]}, "set"),
        ({"group_key": "company", "group_id": "acme", "unset": "a"}, "unset"),
        ({"group_key": "company", "group_id": "acme"}, None),
    ],
)
def test_bad_group_property_calls_are_a_400(tracker, payload, field):
    response = tracker.post(payload, path="/api/groups/properties")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
