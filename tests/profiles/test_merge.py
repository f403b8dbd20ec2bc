"""The merge engine: merge rules, pointers, chains, idempotence, history, explicit merge and
unmerge through the management API."""

from __future__ import annotations

from apps.events.models import Event
from apps.profiles import selectors, services
from apps.profiles.models import GroupMembership, Identity, Profile, ProfileMerge
from tests.factories import at, profile_of


def _merge(api_client, survivor, other):
    return api_client.post(
        f"/api/v1/profiles/{survivor.pk}/merge", {"other_profile": str(other.pk)}, format="json"
    )


def _live(profile):
    return Profile.objects.get(pk=profile.pk)


def test_merge_rules_for_traits_stats_groups_and_identities(send, api_client):
    # Survivor "a": seen from minute 10 to 200; merged "b": from 0 to 100.
    send.batch([send.event("a-1", 10), send.event("a-1", 200)])
    send.batch([send.event("b-1", 0), send.event("b-2", 100), send.event("b-2", 101)])
    send.alias("b-1", "b-2", minutes=102)
    send.people("a-1", minutes=1, set={"plan": "free"}, set_once={"first_touch": "ads"})
    send.people("a-1", minutes=30, set={"color": "red"}, set_once={"campaign": "spring"})
    send.people("b-1", minutes=20, set={"plan": "pro", "color": "blue", "b_only": 1})
    send.people("b-1", minutes=5, set_once={"campaign": "winter"})
    send.people("b-1", minutes=40, set_once={"first_touch": "seo"})
    send.people("a-1", minutes=1, set={"email": "a@example.com"})
    send.people("b-1", minutes=50, set={"email": "b@example.com"})
    send.group("a-1", "company", "acme")
    send.group("b-1", "company", "globex")
    send.group("b-1", "team", "blue")
    a, b = profile_of("a-1"), profile_of("b-1")
    a_sessions, b_sessions = a.session_count, b.session_count

    response = _merge(api_client, a, b)
    assert response.status_code == 201, response.content

    merged = _live(a)
    assert merged.traits == {
        "plan": "pro",  # b wrote it later
        "color": "red",  # a wrote it later
        "b_only": 1,
        "first_touch": "ads",  # set_once: the oldest (a, minute 1) wins
        "campaign": "winter",  # set_once: the oldest (b, minute 5) wins
    }
    assert merged.private_traits == {"email": "b@example.com"}
    assert (merged.first_seen, merged.last_seen) == (at(0), at(200))
    assert merged.event_count == 2 + 4  # 3 tracks and the $create_alias event of b
    assert merged.session_count == a_sessions + b_sessions
    assert sorted(merged.identities.values_list("distinct_id", flat=True)) == [
        "a-1",
        "b-1",
        "b-2",
    ]
    groups = GroupMembership.objects.filter(profile=merged)
    assert sorted(str(m.group) for m in groups) == ["company:acme", "company:globex", "team:blue"]
    assert not GroupMembership.objects.filter(profile_id=b.pk).exists()
    assert Event.objects.filter(distinct_id="b-2").count() == 2  # events are never rewritten

    pointer = _live(b)
    assert pointer.merged_into_id == a.pk
    old = api_client.get(f"/api/v1/profiles/{b.pk}")
    assert old.status_code == 200
    assert old.json()["id"] == str(a.pk)
    listed = api_client.get("/api/v1/profiles").json()["results"]
    assert [p["id"] for p in listed] == [str(a.pk)]  # the pointer is not a person


def test_every_merge_is_recorded_with_who_triggered_it(send, api_client):
    send.track("a-1")
    send.track("b-1")
    a, b = profile_of("a-1"), profile_of("b-1")

    body = _merge(api_client, a, b).json()

    merge = ProfileMerge.objects.get()
    assert body["id"] == merge.pk
    assert (merge.survivor_id, merge.merged_id) == (a.pk, b.pk)
    assert (merge.trigger, merge.triggered_by) == ("api", "root")
    assert merge.moved_distinct_ids == ["b-1"]
    detail = api_client.get(f"/api/v1/profiles/{a.pk}").json()
    assert [m["id"] for m in detail["merges"]] == [merge.pk]
    assert detail["merges"][0]["moved_distinct_ids"] == ["b-1"]
    merged_in = [h for h in detail["history"] if h["action"] == "merged_in"]
    assert len(merged_in) == 1
    assert merged_in[0]["actor"] == "root"
    assert merged_in[0]["detail"]["distinct_ids"] == ["b-1"]


def test_merge_chains_end_consistent(send, api_client):
    for distinct_id in ("a-1", "b-1", "c-1"):
        send.track(distinct_id)
    a, b, c = profile_of("a-1"), profile_of("b-1"), profile_of("c-1")

    assert _merge(api_client, b, a).status_code == 201  # A -> B
    assert _merge(api_client, c, b).status_code == 201  # B -> C

    assert _live(a).merged_into_id == c.pk
    assert _live(b).merged_into_id == c.pk
    assert set(Identity.objects.values_list("profile_id", flat=True)) == {c.pk}
    assert _live(c).event_count == 3
    assert api_client.get(f"/api/v1/profiles/{a.pk}").json()["id"] == str(c.pk)
    assert selectors.profile_follow(_live(a)) == c


def test_merging_again_is_a_no_op(send, api_client):
    send.track("a-1")
    send.track("b-1")
    a, b = profile_of("a-1"), profile_of("b-1")
    assert _merge(api_client, a, b).status_code == 201

    again = services.profile_merge(survivor=a, merged=b, trigger="api")
    reverse = services.profile_merge(survivor=_live(b), merged=_live(a), trigger="api")

    assert again is None
    assert reverse is None
    assert ProfileMerge.objects.count() == 1
    assert _live(a).event_count == 2
    response = _merge(api_client, a, b)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "other_profile"


def test_merging_an_unknown_or_malformed_profile_is_refused(send, api_client):
    send.track("a-1")
    a = profile_of("a-1")

    missing = api_client.post(
        f"/api/v1/profiles/{a.pk}/merge",
        {"other_profile": "00000000-0000-0000-0000-000000000000"},
        format="json",
    )
    malformed = api_client.post(
        f"/api/v1/profiles/{a.pk}/merge", {"other_profile": "nope"}, format="json"
    )

    assert missing.status_code == 404
    assert malformed.status_code == 400
    assert malformed.json()["error"]["field"] == "other_profile"


def test_an_explicit_merge_joins_two_identified_users(send, api_client):
    send.identify("user-1")
    send.identify("user-2")
    one, two = profile_of("user-1"), profile_of("user-2")

    assert _merge(api_client, one, two).status_code == 201

    assert profile_of("user-2") == one


def test_unmerge_restores_identities_traits_groups_and_stats(send, api_client):
    send.batch([send.event("a-1", 10), send.event("a-1", 20)])
    send.batch([send.event("b-1", 0), send.event("b-1", 300), send.event("b-1", 301)])
    send.people("a-1", minutes=1, set={"plan": "free", "color": "red"})
    send.people("b-1", minutes=2, set={"plan": "pro", "size": "xl"})
    send.group("b-1", "company", "globex")
    a, b = profile_of("a-1"), profile_of("b-1")
    before_a = (a.event_count, a.session_count, a.first_seen, a.last_seen)
    before_b = (b.event_count, b.session_count, b.first_seen, b.last_seen)
    merge_id = _merge(api_client, a, b).json()["id"]
    assert _live(a).traits["plan"] == "pro"

    response = api_client.post(
        f"/api/v1/profiles/{a.pk}/unmerge", {"merge": merge_id}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["id"] == str(b.pk)
    a, b = _live(a), _live(b)
    assert b.merged_into_id is None
    assert profile_of("b-1") == b
    assert profile_of("a-1") == a
    assert b.traits == {"plan": "pro", "size": "xl"}
    assert a.traits == {"plan": "free", "color": "red"}
    assert (a.event_count, a.session_count, a.first_seen, a.last_seen) == before_a
    assert (b.event_count, b.session_count, b.first_seen, b.last_seen) == before_b
    assert [str(m.group) for m in GroupMembership.objects.filter(profile=b)] == ["company:globex"]
    assert not GroupMembership.objects.filter(profile=a).exists()
    merge = ProfileMerge.objects.get(pk=merge_id)
    assert merge.undone_at is not None
    assert merge.undone_by == "root"
    assert api_client.get(f"/api/v1/profiles/{b.pk}").json()["id"] == str(b.pk)
    history = api_client.get(f"/api/v1/profiles/{b.pk}").json()["history"]
    assert history[0]["action"] == "unmerged"

    again = api_client.post(f"/api/v1/profiles/{a.pk}/unmerge", {"merge": merge_id}, format="json")
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "already_undone"
    assert _live(b).merged_into_id is None


def test_unmerge_keeps_writes_made_after_the_merge(send, api_client):
    send.track("a-1")
    send.people("b-1", minutes=1, set={"plan": "pro"})
    a, b = profile_of("a-1"), profile_of("b-1")
    merge_id = _merge(api_client, a, b).json()["id"]
    send.people("a-1", minutes=60, set={"plan": "enterprise", "seats": 10})

    api_client.post(f"/api/v1/profiles/{a.pk}/unmerge", {"merge": merge_id}, format="json")

    assert _live(a).traits == {"plan": "enterprise", "seats": 10}
    assert _live(b).traits == {"plan": "pro"}


def test_unmerge_of_an_unknown_merge_is_a_clear_error(send, api_client):
    send.track("a-1")
    a = profile_of("a-1")

    missing = api_client.post(f"/api/v1/profiles/{a.pk}/unmerge", {"merge": 999}, format="json")
    malformed = api_client.post(f"/api/v1/profiles/{a.pk}/unmerge", {"merge": "x"}, format="json")

    assert missing.status_code == 404
    assert missing.json()["error"]["field"] == "merge"
    assert malformed.status_code == 400
    assert malformed.json()["error"]["field"] == "merge"


def test_unmerge_in_a_chain_must_undo_the_later_merge_first(send, api_client):
    for distinct_id in ("a-1", "b-1", "c-1"):
        send.track(distinct_id)
    a, b, c = profile_of("a-1"), profile_of("b-1"), profile_of("c-1")
    first = _merge(api_client, b, a).json()["id"]
    second = _merge(api_client, c, b).json()["id"]

    early = services.profile_unmerge(merge=ProfileMerge.objects.get(pk=second))
    assert early == _live(b)

    assert profile_of("a-1") == b  # a's ids went back with b, a still points at b
    assert _live(a).merged_into_id == b.pk
    response = api_client.post(f"/api/v1/profiles/{b.pk}/unmerge", {"merge": first}, format="json")
    assert response.status_code == 200
    assert {profile_of(d).pk for d in ("a-1", "b-1", "c-1")} == {a.pk, b.pk, c.pk}
    assert [_live(p).event_count for p in (a, b, c)] == [1, 1, 1]
