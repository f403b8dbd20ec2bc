"""Registry of action classes by name: built-ins, then entry points (`cdp.workflow_actions`)."""

from __future__ import annotations

import logging
import threading
from importlib.metadata import entry_points

from apps.workflows.actions.base import Action

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "cdp.workflow_actions"

_registry: dict[str, type[Action]] = {}
# Actions the apps above register from their ready() (send_to_destination): kept through a
# reload, which otherwise only finds built-ins and entry points.
_extensions: dict[str, type[Action]] = {}
_loaded = False
_lock = threading.Lock()


def register(cls: type[Action]) -> type[Action]:
    """Add an action class (usable as a decorator). A later class replaces one of its name."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _registry[cls.name] = cls
    return cls


def register_extension(cls: type[Action]) -> type[Action]:
    """Register an action an upper app provides (from its AppConfig.ready())."""
    _extensions[cls.name] = cls
    return register(cls)


def _load() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        from apps.workflows.actions import builtins

        for cls in builtins.BUILTIN_ACTIONS:
            register(cls)
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = entry.load()
            except Exception:  # a broken plugin must not take the engine down with it
                logger.exception("Could not load workflow action %r (%s)", entry.name, entry.value)
                continue
            if isinstance(loaded, type) and issubclass(loaded, Action):
                if not loaded.name:
                    loaded.name = entry.name
                register(loaded)
            else:
                logger.error("Workflow action %r (%s) is not an Action class", entry.name, entry)
        for cls in _extensions.values():
            register(cls)
        _loaded = True


def actions_reload() -> None:
    """Forget the loaded actions: the next lookup loads the built-ins and the entry points
    again (plugins installed since)."""
    global _loaded
    with _lock:
        _registry.clear()
        _loaded = False


def action_classes() -> dict[str, type[Action]]:
    """Every known action, by name."""
    _load()
    return dict(_registry)


def action_class(name: str) -> type[Action] | None:
    _load()
    return _registry.get(name)
