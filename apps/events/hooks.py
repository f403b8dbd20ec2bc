"""What ingest asks the apps above it, through gates they register in `AppConfig.ready()`.

Events sit below profiles and consents: they never import them. An upper app that must see an
event before it is stored (consent enforcement, data-compliance rules, suppression of erased
people) registers an ingest gate. Every gate runs, in its `order`, on every batch of incoming
events (tracking endpoints, bridges, ephemeral sources and the platform's own emissions) before
anything is stored or queued, so a value a gate removes never reaches the database, a session, a
trait, a workflow or a destination.

A gate returns the events it keeps (it may rewrite their properties and context: call
`event_reserialize` after doing so) and the ones it drops, each with a reason code that the
ingest answer reports as a warning (the answer stays 2xx: an SDK must not retry a refusal)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from apps.events.incoming import IncomingEvent, Rejection, serialize_object
from apps.sources.models import EventSource


@dataclass(slots=True)
class Dropped:
    """An event a gate refused: a reason code (`consent_missing`, `suppressed`) and a message
    that says what to do."""

    event: IncomingEvent
    reason: str
    message: str


@dataclass(slots=True)
class GateOutcome:
    kept: list[IncomingEvent]
    dropped: list[Dropped] = field(default_factory=list)


class IngestGate(Protocol):
    """Sees a batch of one source's events before storage; returns what to keep and drop."""

    def __call__(self, *, source: EventSource, events: list[IncomingEvent]) -> GateOutcome: ...


@dataclass(frozen=True, slots=True)
class _Registered:
    name: str
    order: int
    gate: IngestGate


_gates: list[_Registered] = []


def register_ingest_gate(name: str, gate: IngestGate, *, order: int) -> None:
    """Register (or replace, by name) a gate; lower `order` runs first. Suppression runs
    before consent enforcement, which runs before compliance rules."""
    _gates[:] = [g for g in _gates if g.name != name]
    _gates.append(_Registered(name=name, order=order, gate=gate))
    _gates.sort(key=lambda g: (g.order, g.name))


def unregister_ingest_gate(name: str) -> None:
    _gates[:] = [g for g in _gates if g.name != name]


def ingest_gate_names() -> list[str]:
    return [g.name for g in _gates]


def ingest_gates_apply(
    *, source: EventSource, events: list[IncomingEvent]
) -> tuple[list[IncomingEvent], list[Dropped]]:
    """Run every gate in order; each sees only what the ones before it kept."""
    dropped: list[Dropped] = []
    for registered in _gates:
        if not events:
            break
        outcome = registered.gate(source=source, events=events)
        events = outcome.kept
        dropped.extend(outcome.dropped)
    return events, dropped


def event_reserialize(
    event: IncomingEvent, *, properties: bool = True, context: bool = True
) -> None:
    """Refresh the stored JSON forms after a gate rewrote properties or context (a gate that
    touched only one of them may say so, sparing the other's serialization)."""
    try:
        if properties:
            event.properties, event.properties_json, _ = serialize_object(
                event.properties, "properties"
            )
        if context:
            event.context, event.context_json, _ = serialize_object(event.context, "context")
    except Rejection as exc:  # a gate only removes or replaces values: a bug, said clearly
        raise RuntimeError(f"An ingest gate left an event that cannot be stored: {exc}") from exc


# --- people and group operations -------------------------------------------------------------
# `/api/people` and `/api/groups` apply at once, outside the event pipeline: an upper app that
# refuses a person altogether (suppression after a privacy request) registers an operation gate
# too, asked with the ids an operation would write to before anything is written.


class OperationGate(Protocol):
    """Returns (reason code, message) to refuse an operation on these ids, or None."""

    def __call__(
        self, *, source: EventSource, distinct_ids: list[str]
    ) -> tuple[str, str] | None: ...


_operation_gates: dict[str, OperationGate] = {}


def register_operation_gate(name: str, gate: OperationGate) -> None:
    _operation_gates[name] = gate


def operation_refused(*, source: EventSource, distinct_ids: list[str]) -> tuple[str, str] | None:
    """The first refusal of a registered operation gate, or None."""
    for gate in _operation_gates.values():
        refused = gate(source=source, distinct_ids=distinct_ids)
        if refused is not None:
            return refused
    return None
