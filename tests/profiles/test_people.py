"""People operations (POST /api/people) with the semantics Mixpanel users expect."""

from __future__ import annotations

import pytest

from apps.profiles.models import Identity, Profile
from tests.factories import profile_of


def test_set_creates_the_profile_and_overwrites(send):
    body = send.people("anon-1", set={"plan": "free", "seats": 1})
    send.people("anon-1", set={"plan": "pro"})

    profile = profile_of("anon-1")
    assert body["profile_id"] == str(profile.pk)
    assert body["errors"] == {}
    assert profile.traits == {"plan": "pro", "seats": 1}


def test_set_once_keeps_the_first_value(send):
    send.people("anon-1", set_once={"first_source": "ads"})
    send.people("anon-1", set_once={"first_source": "seo", "first_page": "/"})

    assert profile_of("anon-1").traits == {"first_source": "ads", "first_page": "/"}


def test_increment_adds_and_starts_from_zero(send):
    send.people("anon-1", increment={"logins": 1, "credit": 2.5})
    send.people("anon-1", increment={"logins": 2, "credit": -1})

    assert profile_of("anon-1").traits == {"logins": 3, "credit": 1.5}


def test_append_union_and_remove_on_lists(send):
    send.people("anon-1", append={"pages": "/a"})
    send.people("anon-1", append={"pages": "/a"})
    send.people("anon-1", append={"pages": ["/b", "/c"]})  # appends the list as one item
    send.people("anon-1", union={"tags": ["x", "y"]})
    send.people("anon-1", union={"tags": ["y", "z"]})
    send.people("anon-1", remove={"tags": "y", "missing": "q"})

    traits = profile_of("anon-1").traits
    assert traits["pages"] == ["/a", "/a", ["/b", "/c"]]
    assert traits["tags"] == ["x", "z"]
    assert "missing" not in traits


def test_unset_removes_traits(send):
    send.people("anon-1", set={"plan": "pro", "seats": 3, "email": "ann@example.com"})
    send.people("anon-1", unset=["seats", "email", "never_set"])

    profile = profile_of("anon-1")
    assert profile.traits == {"plan": "pro"}
    assert profile.private_traits == {}


def test_delete_removes_the_profile_and_its_identities(send):
    send.track("anon-1")
    send.people("anon-1", set={"plan": "pro"})
    send.alias("anon-1", "crm-1")

    body = send.people("crm-1", delete=True)

    assert body["deleted"] is True
    assert Profile.objects.count() == 0
    assert Identity.objects.count() == 0
    assert send.people("crm-1", delete=True)["deleted"] is False
    send.track("anon-1", minutes=5)  # a new event starts a fresh profile
    assert profile_of("anon-1").traits == {}


def test_several_operations_apply_in_the_documented_order(send):
    send.people("anon-1", set={"tags": ["old"], "count": 1})

    body = send.people(
        "anon-1",
        unset=["gone"],
        remove={"tags": "old"},
        union={"tags": ["u"]},
        append={"tags": "a"},
        increment={"count": 10, "fresh": 1},
        set={"count": 5, "gone": True, "plan": "pro"},
        set_once={"plan": "free", "first": "yes"},
    )

    assert body["errors"] == {}
    # set_once, set, increment, append, union, remove, unset
    assert profile_of("anon-1").traits == {
        "tags": ["a", "u"],
        "count": 15,
        "fresh": 1,
        "plan": "pro",
        "first": "yes",
    }


def test_type_errors_are_reported_per_key_and_the_rest_applies(send):
    send.people("anon-1", set={"plan": "pro", "visits": 1, "name_list": "not a list"})

    body = send.people(
        "anon-1",
        increment={"plan": 1, "visits": "2", "logins": 1},
        append={"name_list": "x", "pages": "/"},
        union={"plan": ["a"]},
        set={"ok": True},
    )

    assert set(body["errors"]) == {
        "increment.plan",
        "increment.visits",
        "append.name_list",
        "union.plan",
    }
    assert "number" in body["errors"]["increment.plan"]
    assert "list" in body["errors"]["append.name_list"]
    assert profile_of("anon-1").traits == {
        "plan": "pro",
        "visits": 1,
        "name_list": "not a list",
        "logins": 1,
        "pages": ["/"],
        "ok": True,
    }


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"set": ["plan"]}, "set"),
        ({"set": "plan=pro"}, "set"),
        ({"set_once": 1}, "set_once"),
        ({"increment": [1]}, "increment"),
        ({"unset": "plan"}, "unset"),
        ({"unset": 3}, "unset"),
        ({"delete": "yes"}, "delete"),
        ({}, None),
    ],
)
def test_malformed_operations_are_a_400_naming_the_field(tracker, payload, field):
    response = tracker.post({"distinct_id": "anon-1", **payload}, path="/api/people")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert Profile.objects.count() == 0


def test_a_body_that_is_not_an_object_is_a_400(tracker):
    response = tracker.post([{"distinct_id": "anon-1"}], path="/api/people")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_body"


def test_pii_traits_go_to_private_traits(send):
    send.people(
        "anon-1",
        set={"email": "ann@example.com", "name": "Ann", "plan": "pro"},
        set_once={"phone": "+4412345678"},
    )

    profile = profile_of("anon-1")
    assert profile.traits == {"plan": "pro"}
    assert profile.private_traits == {
        "email": "ann@example.com",
        "name": "Ann",
        "phone": "+4412345678",
    }


def test_identify_traits_and_private_traits(send):
    send.identify(
        "user-1",
        traits={"plan": "pro", "email": "ann@example.com"},
        private_traits={"ssn_last4": "1234"},
    )

    profile = profile_of("user-1")
    assert profile.traits == {"plan": "pro"}
    assert profile.private_traits == {"email": "ann@example.com", "ssn_last4": "1234"}


# --- many people at once (the workflow engine's batches) -----------------------------------------


@pytest.mark.django_db
def test_people_apply_many_applies_each_change_all_or_nothing_in_order():
    from apps.profiles import services

    services.people_apply(distinct_id="bob", ops={"set": {"score": "high", "plan": "free"}})
    results = services.people_apply_many(
        changes=[
            ("ann", [{"set": {"plan": "pro"}, "increment": {"logins": 1}}]),
            # Incrementing a string fails: none of bob's change applies (not even the set).
            ("bob", [{"set": {"plan": "pro"}}, {"increment": {"score": 1}}]),
            # The same person again: applied after the first change, seeing it.
            ("ann", [{"increment": {"logins": 2}}, {"set": {"plan": "team"}}]),
            ("cid", [{"unset": ["nothing"]}]),  # a new person gets a profile
        ]
    )

    assert [sorted(r.errors) for r in results] == [[], ["increment.score"], [], []]
    assert profile_of("ann").traits == {"plan": "team", "logins": 3}
    assert profile_of("bob").traits == {"score": "high", "plan": "free"}
    assert profile_of("cid").traits == {}
    assert results[0].profile is not None
    assert results[0].profile.pk == profile_of("ann").pk


@pytest.mark.django_db
def test_people_apply_many_follows_merges_and_refuses_deletes():
    from apps.profiles import services

    services.people_apply(distinct_id="ann", ops={"set": {"plan": "free"}})
    services.people_apply(distinct_id="ann-phone", ops={"set": {"device": "phone"}})
    survivor, merged = profile_of("ann"), profile_of("ann-phone")
    services.profile_merge(survivor=survivor, merged=merged, trigger="manual")

    services.people_apply_many(changes=[("ann-phone", [{"set": {"plan": "pro"}}])])

    assert profile_of("ann-phone").pk == survivor.pk
    assert profile_of("ann").traits["plan"] == "pro"
    with pytest.raises(ValueError, match="people_apply"):
        services.people_apply_many(changes=[("ann", [{"delete": True}])])
