"""Destination types: the built-in ones and those other packages add through the
`cdp.destinations` entry point group (apps.destinations.types.registry)."""

from apps.destinations.types.base import (
    DeliveryResult,
    DestinationType,
    Outgoing,
    SendContext,
    TypeError_,
)
from apps.destinations.types.registry import destination_type, destination_types, register

__all__ = [
    "DeliveryResult",
    "DestinationType",
    "Outgoing",
    "SendContext",
    "TypeError_",
    "destination_type",
    "destination_types",
    "register",
]
