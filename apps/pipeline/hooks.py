"""What processing tells the apps above the pipeline (destinations), through hooks they
register in `AppConfig.ready()`: the pipeline never imports them.

`events_processed` subscribers run last in processing's transaction, after routing rules,
so that what they write (deliveries in the outbox) commits, or rolls back, with the events'
processing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from apps.profiles.models import Profile


class EventsProcessedHook(Protocol):
    """A processed batch: the events (stored or ephemeral) and their profiles by distinct id."""

    def __call__(self, *, events: Sequence[Any], profiles: dict[str, Profile]) -> None: ...


_events_processed: list[EventsProcessedHook] = []


def register_events_processed(hook: EventsProcessedHook) -> None:
    if hook not in _events_processed:  # ready() may run twice in tests; subscribe once
        _events_processed.append(hook)


def events_processed(*, events: Sequence[Any], profiles: dict[str, Profile]) -> None:
    for hook in _events_processed:
        hook(events=events, profiles=profiles)
