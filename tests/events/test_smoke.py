"""A first event goes in through the API and comes out processed, with a session."""

from apps.events.models import Event


def test_one_event_is_stored_processed_and_sessionized(tracker):
    response = tracker.post({"event_name": "signed_up", "distinct_id": "user-1"})

    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": [], "warnings": []}
    event = Event.objects.get()
    assert event.event_name == "signed_up"
    assert event.processed_at is not None
    assert event.session is not None
    assert event.session.distinct_id == "user-1"
