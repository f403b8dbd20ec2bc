"""Registry of destination types by name: built-ins, then entry points (`cdp.destinations`)."""

from __future__ import annotations

import logging
import threading
from importlib.metadata import entry_points

from apps.destinations.types.base import DestinationType

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "cdp.destinations"

_registry: dict[str, type[DestinationType]] = {}
_loaded = False
_lock = threading.Lock()


def register(cls: type[DestinationType]) -> type[DestinationType]:
    """Add a type (usable as a decorator). A later class replaces one of its name."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _registry[cls.name] = cls
    return cls


def _load() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        from apps.destinations.types import builtins

        for cls in builtins.BUILTIN_TYPES:
            register(cls)
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = entry.load()
            except Exception:  # a broken plugin must not take deliveries down with it
                logger.exception("Could not load destination type %r (%s)", entry.name, entry.value)
                continue
            if isinstance(loaded, type) and issubclass(loaded, DestinationType):
                if not loaded.name:
                    loaded.name = entry.name
                register(loaded)
            else:
                logger.error("Destination type %r (%s) is not a DestinationType", entry.name, entry)
        _loaded = True


def destination_types() -> dict[str, type[DestinationType]]:
    _load()
    return dict(_registry)


def destination_type(name: str) -> type[DestinationType] | None:
    _load()
    return _registry.get(name)
