"""One profile per person: first events create profiles, identify and alias link ids,
placeholder ids are refused everywhere."""

from __future__ import annotations

import pytest

from apps.events.models import Event
from apps.profiles.models import Identity, IdentityKind, MergeConflict, Profile, ProfileMerge
from tests.factories import at, profile_of


def test_first_event_from_an_unknown_id_creates_an_anonymous_profile(send):
    send.track("anon-1", minutes=5)

    profile = profile_of("anon-1")
    assert not profile.identified
    assert list(profile.identities.values_list("distinct_id", "kind")) == [
        ("anon-1", IdentityKind.ANONYMOUS)
    ]
    assert (profile.first_seen, profile.last_seen) == (at(5), at(5))
    assert (profile.event_count, profile.session_count) == (1, 1)


def test_stats_stay_right_over_several_batches(send):
    # Three visits (gaps longer than the 30-minute inactivity timeout), sent in three batches.
    send.batch([send.event("anon-1", 0), send.event("anon-1", 1), send.event("anon-1", 2)])
    send.batch([send.event("anon-1", 120), send.event("anon-1", 125)])
    send.batch([send.event("anon-1", 300), send.event("anon-2", 300)])

    profile = profile_of("anon-1")
    assert profile.event_count == 6
    assert profile.session_count == 3
    assert (profile.first_seen, profile.last_seen) == (at(0), at(300))
    assert Profile.objects.count() == 2
    assert profile_of("anon-2").event_count == 1


def test_a_late_event_widens_first_seen(send):
    send.track("anon-1", minutes=100)
    send.track("anon-1", minutes=-60 * 24)  # arrives late, happened a day earlier

    profile = profile_of("anon-1")
    assert (profile.first_seen, profile.last_seen) == (at(-60 * 24), at(100))
    assert profile.event_count == 2


PLACEHOLDERS = ["null", "undefined", "None", "0", "-1", "anonymous", "guest", "[object Object]", ""]

ENDPOINTS = [
    ("/api/track", {"event_name": "x"}, "distinct_id"),
    ("/api/identify", {"anonymous_id": "anon-ok"}, "distinct_id"),
    ("/api/identify", {"distinct_id": "user-ok"}, "anonymous_id"),
    ("/api/alias", {"alias": "alias-ok"}, "distinct_id"),
    ("/api/alias", {"distinct_id": "user-ok"}, "alias"),
    ("/api/people", {"set": {"plan": "pro"}}, "distinct_id"),
    ("/api/groups", {"group_key": "company", "group_id": "acme"}, "distinct_id"),
]


@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
@pytest.mark.parametrize(("path", "payload", "field"), ENDPOINTS)
def test_placeholder_ids_are_refused_on_every_endpoint(tracker, path, payload, field, placeholder):
    response = tracker.post({**payload, field: placeholder}, path=path)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field
    assert error["message"]
    assert Profile.objects.count() == 0
    assert Identity.objects.count() == 0
    assert Event.objects.count() == 0


# --- identify -----------------------------------------------------------------------------------


def test_identify_gives_the_anonymous_history_to_the_known_profile(send, api_client):
    for minute in range(3):
        send.track("anon-1", minutes=minute, name=f"anon_{minute}")
    send.identify("user-1", "anon-1", minutes=10)
    send.track("user-1", minutes=20, name="after_login")
    send.track("anon-1", minutes=21, name="same_device_later")

    profile = profile_of("user-1")
    assert profile_of("anon-1") == profile
    assert profile.identified
    assert profile.event_count == 6  # 3 anonymous + $identify + 2 after
    assert (profile.first_seen, profile.last_seen) == (at(0), at(21))

    names, url = [], f"/api/v1/profiles/{profile.pk}/events?page_size=2"
    while url:
        page = api_client.get(url)
        assert page.status_code == 200, page.content
        assert len(page.json()["results"]) <= 2
        names += [e["event_name"] for e in page.json()["results"]]
        url = page.json()["next"]
    assert names == [
        "same_device_later",
        "after_login",
        "$identify",
        "anon_2",
        "anon_1",
        "anon_0",
    ]


def test_identify_when_only_the_anonymous_id_exists(send):
    send.track("anon-1")
    anonymous = profile_of("anon-1")

    send.identify("user-1", "anon-1", minutes=1)

    profile = profile_of("user-1")
    assert profile.pk == anonymous.pk
    assert profile.identified
    kinds = dict(profile.identities.values_list("distinct_id", "kind"))
    assert kinds == {"anon-1": IdentityKind.ANONYMOUS, "user-1": IdentityKind.USER_ID}
    assert ProfileMerge.objects.count() == 0


def test_identify_when_only_the_user_id_exists(send):
    send.track("user-1")
    known = profile_of("user-1")

    send.identify("user-1", "anon-1", minutes=1)
    send.track("anon-1", minutes=2)

    assert profile_of("anon-1").pk == known.pk
    assert profile_of("user-1").identified
    assert profile_of("user-1").event_count == 3
    assert Profile.objects.count() == 1


def test_identify_with_neither_id_known_creates_one_identified_profile(send):
    send.identify("user-1", "anon-1", traits={"plan": "pro"})

    profile = profile_of("user-1")
    assert profile == profile_of("anon-1")
    assert profile.identified
    assert profile.traits == {"plan": "pro"}
    assert Profile.objects.count() == 1


def test_identify_when_both_ids_exist_merges_them(send, api_client):
    send.track("anon-1", minutes=0)
    send.track("anon-1", minutes=1)
    send.track("user-1", minutes=5)
    anonymous, known = profile_of("anon-1"), profile_of("user-1")
    assert anonymous != known

    send.identify("user-1", "anon-1", minutes=10, message_id="identify-msg-1")

    profile = profile_of("anon-1")
    assert profile.pk == known.pk  # the known profile survives
    assert profile.event_count == 4
    assert profile.first_seen == at(0)
    merge = ProfileMerge.objects.get()
    assert (merge.survivor_id, merge.merged_id) == (known.pk, anonymous.pk)
    assert merge.trigger == "identify"
    assert "identify-msg-1" in merge.triggered_by
    assert merge.moved_distinct_ids == ["anon-1"]

    old = api_client.get(f"/api/v1/profiles/{anonymous.pk}")
    assert old.status_code == 200
    assert old.json()["id"] == str(known.pk)


def test_identify_never_merges_two_identified_profiles(send, api_client):
    send.identify("user-1", "anon-1")
    send.identify("user-2", "anon-2")
    send.track("anon-1", minutes=1)
    first, second = profile_of("user-1"), profile_of("user-2")

    send.identify("user-2", "anon-1", minutes=2, message_id="conflicting-identify")

    assert profile_of("anon-1") == first
    assert profile_of("user-2") == second
    assert first != second
    assert ProfileMerge.objects.count() == 0
    conflict = MergeConflict.objects.get()
    assert {conflict.profile_id, conflict.other_profile_id} == {first.pk, second.pk}
    assert "conflicting-identify" in conflict.triggered_by
    assert "user-1" in conflict.reason

    history = api_client.get(f"/api/v1/profiles/{second.pk}").json()["history"]
    refused = [h for h in history if h["action"] == "merge_refused"]
    assert len(refused) == 1
    assert refused[0]["detail"]["other"] == str(first.pk)


def test_identify_user_id_as_anonymous_id_of_another_user_is_refused(send):
    send.identify("user-1")
    send.identify("user-2")

    send.identify("user-2", "user-1", minutes=1)

    assert profile_of("user-1") != profile_of("user-2")
    assert MergeConflict.objects.count() == 1


def test_a_device_of_user_a_identifying_as_user_b_gives_b_its_own_profile(send):
    send.track("device-1", minutes=0)
    send.identify("user-a", "device-1", minutes=1, traits={"plan": "pro"})
    a = profile_of("user-a")

    send.identify("user-b", "device-1", minutes=60, traits={"plan": "free"})

    b = profile_of("user-b")
    assert b != a
    assert b.identified
    assert profile_of("device-1") == a  # the device's history stays with A
    assert profile_of("user-a").traits == {"plan": "pro"}
    assert b.traits == {"plan": "free"}
    assert list(b.identities.values_list("distinct_id", flat=True)) == ["user-b"]


# --- alias --------------------------------------------------------------------------------------


def test_alias_adds_another_id_of_the_same_person(send):
    send.identify("user-1", "anon-1")
    send.alias("user-1", "crm-42", minutes=1)
    send.track("crm-42", minutes=2)

    profile = profile_of("crm-42")
    assert profile == profile_of("user-1")
    assert profile.identities.get(distinct_id="crm-42").kind == IdentityKind.ALIAS
    assert profile.event_count == 3


def test_alias_of_two_existing_profiles_merges_them(send):
    send.identify("user-1")
    send.track("crm-42", minutes=1)
    send.track("crm-42", minutes=2)
    survivor, other = profile_of("user-1"), profile_of("crm-42")

    send.alias("user-1", "crm-42", minutes=3)

    assert profile_of("crm-42") == survivor
    assert profile_of("user-1").event_count == 4
    merge = ProfileMerge.objects.get()
    assert (merge.survivor_id, merge.merged_id, merge.trigger) == (survivor.pk, other.pk, "alias")
    assert Profile.objects.get(pk=other.pk).merged_into_id == survivor.pk
