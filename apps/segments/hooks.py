"""What segments tell the apps above them (destinations), through hooks they register in
`AppConfig.ready()`: segments never import them.

`membership_changed` runs inside the transaction that opened or closed the stays, so what a
subscriber writes (deliveries in the outbox) commits, or rolls back, with the change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class MembershipChangedHook(Protocol):
    """People entered and left a segment: each stay as (stay id, profile id)."""

    def __call__(
        self,
        *,
        segment_key: str,
        segment_name: str,
        entered: Sequence[tuple[Any, Any]],
        exited: Sequence[tuple[Any, Any]],
    ) -> None: ...


_membership_changed: list[MembershipChangedHook] = []


def register_membership_changed(hook: MembershipChangedHook) -> None:
    if hook not in _membership_changed:  # ready() may run twice in tests; subscribe once
        _membership_changed.append(hook)


def membership_changed(
    *,
    segment_key: str,
    segment_name: str,
    entered: Sequence[tuple[Any, Any]],
    exited: Sequence[tuple[Any, Any]],
) -> None:
    for hook in _membership_changed:
        hook(segment_key=segment_key, segment_name=segment_name, entered=entered, exited=exited)
