"""The management API for profiles: filters, detail, private traits, query counts."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.factories import at, profile_of
from tests.users import client_with_perms


@pytest.fixture
def people(send):
    """Three people: ann (known, pro, acme), bob (known, free), and an anonymous visitor."""
    send.batch([send.event("anon-ann", 0), send.event("anon-ann", 10)])
    send.identify("ann", "anon-ann", minutes=20, traits={"plan": "pro", "seats": 10})
    send.identify("bob", minutes=60 * 24, traits={"plan": "free", "seats": 2})
    send.track("visitor", minutes=60 * 48)
    send.group("ann", "company", "acme")
    send.group("visitor", "company", "globex")
    return {name: profile_of(name) for name in ("ann", "bob", "visitor")}


def _ids(api_client, query):
    response = api_client.get(f"/api/v1/profiles?{query}")
    assert response.status_code == 200, response.content
    return {p["id"] for p in response.json()["results"]}


def _pks(people, *names):
    return {str(people[name].pk) for name in names}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ("ann", "bob", "visitor")),
        ("traits.plan=pro", ("ann",)),
        ("traits.plan=enterprise", ()),
        ("traits.seats=10", ("ann",)),
        ("traits.plan=free&traits.seats=2", ("bob",)),
        ("identified=true", ("ann", "bob")),
        ("identified=false", ("visitor",)),
        (f"first_seen_after={at(60).isoformat()}", ("bob", "visitor")),
        (f"first_seen_before={at(60).isoformat()}", ("ann",)),
        (f"last_seen_after={at(60 * 47).isoformat()}", ("visitor",)),
        (f"last_seen_before={at(60 * 25).isoformat()}", ("ann", "bob")),
        ("group=company:acme", ("ann",)),
        ("group=company:initech", ()),
        ("distinct_id=anon-ann", ("ann",)),
        ("distinct_id=bob", ("bob",)),
    ],
)
def test_list_filters(api_client, people, query, expected):
    assert _ids(api_client, query.replace("+", "%2B")) == _pks(people, *expected)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("first_seen_after=yesterday", "first_seen_after"),
        ("last_seen_before=2025-13-45", "last_seen_before"),
        ("identified=maybe", "identified"),
        ("group=acme", "group"),
        ("group=:acme", "group"),
        ("traits.=pro", "traits."),
        ("traits.pl%20an=pro", "traits.pl an"),
        ("traits.a__b=1", "traits.a__b"),
    ],
)
def test_bad_filter_values_are_a_400_with_the_field(api_client, people, query, field):
    response = api_client.get(f"/api/v1/profiles?{query}")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field
    assert error["message"]


def test_detail_shows_identities_traits_groups_stats_and_history(api_client, people):
    ann = people["ann"]

    body = api_client.get(f"/api/v1/profiles/{ann.pk}").json()

    assert body["id"] == str(ann.pk)
    assert body["identified"] is True
    assert {(i["distinct_id"], i["kind"]) for i in body["identities"]} == {
        ("ann", "user_id"),
        ("anon-ann", "anonymous"),
    }
    assert body["traits"] == {"plan": "pro", "seats": 10}
    assert [(g["group_key"], g["group_id"]) for g in body["groups"]] == [("company", "acme")]
    assert body["event_count"] == 3
    assert body["first_seen"].startswith("2025-03-01T12:00:00")
    assert body["merges"] == []
    assert isinstance(body["history"], list)


def test_unknown_and_malformed_profile_ids_are_404(api_client, people):
    assert api_client.get("/api/v1/profiles/00000000-0000-0000-0000-000000000000").status_code == (
        404
    )
    assert api_client.get("/api/v1/profiles/not-a-uuid").status_code == 404
    events = api_client.get("/api/v1/profiles/not-a-uuid/events")
    assert events.status_code == 404


def test_the_api_needs_a_staff_user(people, django_user_model):
    anonymous = APIClient().get("/api/v1/profiles")
    user = django_user_model.objects.create_user(username="plain", password="pw-123456!")
    client = APIClient()
    client.force_authenticate(user)

    assert anonymous.status_code in (401, 403)
    assert client.get("/api/v1/profiles").status_code == 403


def _staff_client(django_user_model, *perms):
    return client_with_perms(
        "profiles.view_profile", "events.view_event", *(f"profiles.{p}" for p in perms)
    )


def test_private_traits_only_with_the_permission(send, api_client, django_user_model):
    send.identify("ann", traits={"plan": "pro"}, private_traits={"email": "ann@example.com"})
    ann = profile_of("ann")
    url = f"/api/v1/profiles/{ann.pk}"
    without = _staff_client(django_user_model)
    with_perm = _staff_client(django_user_model, "view_private_traits")

    assert api_client.get(url).json()["private_traits"] == {"email": "ann@example.com"}
    assert with_perm.get(url).json()["private_traits"] == {"email": "ann@example.com"}
    hidden = without.get(url)
    assert hidden.status_code == 200
    assert hidden.json()["private_traits"] is None
    assert hidden.json()["traits"] == {"plan": "pro"}
    assert without.get("/api/v1/profiles").json()["results"][0]["private_traits"] is None
    assert "ann@example.com" not in without.get(url).content.decode()
    timeline = without.get(f"{url}/events")
    assert timeline.status_code == 200
    assert [e["event_name"] for e in timeline.json()["results"]] == ["$identify"]
    assert "ann@example.com" not in timeline.content.decode()
    assert "ann@example.com" in api_client.get(f"{url}/events").content.decode()


def test_merge_and_unmerge_need_the_change_permission(send, django_user_model):
    send.track("a-1")
    send.track("b-1")
    a, b = profile_of("a-1"), profile_of("b-1")
    viewer = _staff_client(django_user_model, "view_profile")

    response = viewer.post(
        f"/api/v1/profiles/{a.pk}/merge", {"other_profile": str(b.pk)}, format="json"
    )

    assert response.status_code == 403
    assert profile_of("b-1") == b


def test_timeline_of_a_merged_profile_id_is_the_survivors(send, api_client):
    send.track("anon-1", minutes=0, name="before")
    anonymous = profile_of("anon-1")
    send.identify("user-1", "anon-1", minutes=1)
    send.track("user-1", minutes=2, name="after")

    body = api_client.get(f"/api/v1/profiles/{anonymous.pk}/events").json()

    assert [e["event_name"] for e in body["results"]] == ["after", "$identify", "before"]


def test_timeline_of_a_profile_from_a_merge(send, api_client):
    send.track("anon-1", minutes=0, name="anon")
    send.track("user-1", minutes=1, name="known")
    send.identify("user-1", "anon-1", minutes=2)

    body = api_client.get(f"/api/v1/profiles/{profile_of('user-1').pk}/events").json()

    assert [e["event_name"] for e in body["results"]] == ["$identify", "known", "anon"]
    assert {e["distinct_id"] for e in body["results"]} == {"anon-1", "user-1"}


def _many_people(send, count):
    for n in range(count):
        send.identify(f"user-{n}", f"anon-{n}", traits={"plan": "pro"})
        send.group(f"user-{n}", "company", f"c{n % 2}")
        send.group(f"user-{n}", "team", f"t{n}")


def test_list_query_count_is_bounded(send, api_client, django_assert_max_num_queries):
    _many_people(send, 8)

    with django_assert_max_num_queries(6):
        response = api_client.get("/api/v1/profiles?traits.plan=pro&group=company:c1")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 4


def test_detail_query_count_is_bounded(send, api_client, django_assert_max_num_queries):
    _many_people(send, 3)
    for n in (1, 2):
        send.track(f"user-{n}")
        api_client.post(
            f"/api/v1/profiles/{profile_of('user-0').pk}/merge",
            {"other_profile": str(profile_of(f"user-{n}").pk)},
            format="json",
        )
    profile = profile_of("user-0")

    with django_assert_max_num_queries(9):
        response = api_client.get(f"/api/v1/profiles/{profile.pk}")
    assert response.status_code == 200
    assert len(response.json()["identities"]) == 6
    assert len(response.json()["groups"]) == 5
    assert len(response.json()["merges"]) == 2

    with django_assert_max_num_queries(8):
        events = api_client.get(f"/api/v1/profiles/{profile.pk}/events")
    assert events.status_code == 200
    assert len(events.json()["results"]) == 5
