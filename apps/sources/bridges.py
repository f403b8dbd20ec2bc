"""Bridges: how events reach a source. A small registry that other bridges plug into."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bridge:
    key: str
    name: str
    description: str


_REGISTRY: dict[str, Bridge] = {}


def bridge_register(bridge: Bridge) -> Bridge:
    if bridge.key in _REGISTRY:
        raise ValueError(f"A bridge with key {bridge.key!r} is already registered")
    _REGISTRY[bridge.key] = bridge
    return bridge


def bridge_get(key: str) -> Bridge:
    return _REGISTRY[key]


def bridge_choices() -> list[tuple[str, str]]:
    return [(bridge.key, bridge.name) for bridge in _REGISTRY.values()]


REST_API = bridge_register(
    Bridge(
        key="rest",
        name="REST API",
        description="Events posted over HTTP to the tracking endpoints with the write key.",
    )
)

INTERNAL = bridge_register(
    Bridge(
        key="internal",
        name="Internal",
        description="Events the platform emits itself: segment entries and exits, workflow events.",
    )
)
