"""Identify links the anonymous history to the known profile."""

from apps.profiles import selectors


def test_identify_merges_anonymous_history_into_known_profile(tracker):
    tracker.post({"event_name": "page_view", "distinct_id": "anon-1"})
    tracker.post({"event_name": "signed_up", "distinct_id": "user-1"})
    response = tracker.post(
        {
            "distinct_id": "user-1",
            "anonymous_id": "anon-1",
            "traits": {"plan": "pro"},
            "private_traits": {"email": "ann@example.com"},
        },
        path="/api/identify",
    )
    assert response.status_code == 200, response.content

    profile = selectors.profile_get_for_distinct_id("anon-1")
    assert profile == selectors.profile_get_for_distinct_id("user-1")
    assert profile.identified
    assert profile.traits == {"plan": "pro"}
    assert profile.private_traits == {"email": "ann@example.com"}
    assert profile.event_count == 3
