"""Ingest gates: what an upper app registers to see events before they are stored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.events import hooks
from apps.events.hooks import Dropped, GateOutcome
from apps.events.incoming import IncomingEvent
from apps.events.models import Event
from apps.events.services import events_emit
from apps.sources.models import EventSource
from tests.events.track_helpers import event, ok

pytestmark = pytest.mark.django_db


def drop_named(name: str, reason: str):
    def gate(*, source: EventSource, events: list[IncomingEvent]) -> GateOutcome:
        kept = [e for e in events if e.event_name != name]
        dropped = [Dropped(e, reason, f"{name} is not accepted") for e in events if e not in kept]
        return GateOutcome(kept=kept, dropped=dropped)

    return gate


def strip_property(key: str):
    def gate(*, source: EventSource, events: list[IncomingEvent]) -> GateOutcome:
        for incoming in events:
            if key in incoming.properties:
                incoming.properties = {k: v for k, v in incoming.properties.items() if k != key}
                hooks.event_reserialize(incoming)
        return GateOutcome(kept=events)

    return gate


@pytest.fixture
def gates() -> Iterator[None]:
    hooks.register_ingest_gate("test-strip", strip_property("secret"), order=20)
    hooks.register_ingest_gate("test-drop", drop_named("blocked", "test_refused"), order=10)
    yield
    hooks.unregister_ingest_gate("test-strip")
    hooks.unregister_ingest_gate("test-drop")


@pytest.mark.usefixtures("gates")
def test_a_gate_drops_with_a_warning_and_another_rewrites_before_storage(tracker):
    batch = [
        event("ok", "u1", properties={"secret": "x", "keep": 1}),
        event("blocked", "u1"),
    ]
    answer = ok(tracker.post({"batch": batch}))

    assert answer["accepted"] == 1
    assert answer["duplicates"] == 0
    [warning] = [w for w in answer["warnings"] if w.get("dropped")]
    assert warning["index"] == 1
    assert warning["code"] == "test_refused"
    stored = Event.objects.get()
    assert stored.event_name == "ok"
    assert stored.properties == {"keep": 1}  # the stripped value never reached the table


@pytest.mark.usefixtures("gates")
def test_gates_see_the_platform_s_own_emissions_too():
    assert events_emit(distinct_id="u1", event_name="blocked") is None
    events_emit(distinct_id="u1", event_name="noted", properties={"secret": "x"})

    assert list(Event.objects.values_list("event_name", "properties")) == [("noted", {})]


def test_gates_run_in_their_order_whatever_the_registration_order():
    try:
        hooks.register_ingest_gate("test-b", drop_named("b", "b"), order=2)
        hooks.register_ingest_gate("test-a", drop_named("a", "a"), order=1)
        names = hooks.ingest_gate_names()
        assert names.index("test-a") < names.index("test-b")
    finally:
        hooks.unregister_ingest_gate("test-a")
        hooks.unregister_ingest_gate("test-b")
