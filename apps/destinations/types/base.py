"""The destination type contract: a small class that sends a batch of outgoing messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


class TypeError_(Exception):
    """A destination type's configuration or connection is wrong (a clear message to show)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One delivery as a type sends it: its idempotency key, what caused it, the payload."""

    delivery_id: int
    key: str
    trigger: str
    payload: Any
    profile_id: str | None = None


@dataclass(slots=True)
class DeliveryResult:
    """The outcome of sending one delivery. `retry_after` (seconds) comes from the target;
    `gone` (HTTP 410) disables the destination."""

    ok: bool
    status_code: int | None = None
    error: str = ""
    response: str = ""
    latency_ms: int = 0
    retry_after: float | None = None
    gone: bool = False


@dataclass(frozen=True, slots=True)
class SendContext:
    """What a type needs besides the messages: the credentials in use (production or test),
    the destination's type settings, and whether internal addresses may be reached."""

    credentials: dict[str, Any]
    settings: dict[str, Any]
    allow_internal: bool
    destination_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class DestinationType:
    """Subclass, set the class attributes, implement `send` (and `test_connection`).

    `send(context, batch)` returns one DeliveryResult per message, in order. It is called
    outside any database transaction, with at most `max_batch(settings)` messages."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    resource_kinds: ClassVar[tuple[str, ...]] = ()
    # Whether it can forward a `profile_deleted` delivery (privacy requests).
    supports_profile_deleted: ClassVar[bool] = False
    settings_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> list[tuple[str, str]]:
        """Checks beyond the JSON schema, as (field, message) pairs."""
        return []

    @classmethod
    def max_batch(cls, settings: dict[str, Any]) -> int:
        return 1

    def send(self, context: SendContext, batch: list[Outgoing]) -> list[DeliveryResult]:
        raise NotImplementedError(f"{type(self).__name__} must implement send()")

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "label": cls.label,
            "resource_kinds": list(cls.resource_kinds),
            "supports_profile_deleted": cls.supports_profile_deleted,
            "settings_schema": cls.settings_schema,
        }
