"""The action contract: a small class with a name, ports, a config schema and `run`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from apps.workflows.context import NodeContext

# Every action has this port too: a node's failure fires it when an edge leaves it.
ERROR_PORT = "error"


@dataclass(frozen=True, slots=True)
class Fire:
    """An output port firing, with the payload the next nodes receive as their input."""

    port: str
    payload: Any = None


@dataclass(frozen=True, slots=True)
class Wait:
    """Continue later: after `seconds`, `port` fires with `payload` (see the delay action).
    The run is saved as waiting and resumed by a scheduled task, holding no worker."""

    seconds: float
    port: str = "out"
    payload: Any = None


@dataclass(frozen=True, slots=True)
class Retry:
    """How often a node is tried when it fails with a TransientError (or times out), waiting
    `backoff` * 2**(attempt-1) seconds (at most `max_backoff`) before each new attempt."""

    attempts: int = 1
    backoff: float = 0.5
    max_backoff: float = 10.0

    def delay_before(self, attempt: int) -> float:
        return min(self.backoff * 2 ** (attempt - 2), self.max_backoff)


class ActionError(Exception):
    """The node failed: its error port fires, or the run fails when none is connected."""


class TransientError(ActionError):
    """A failure worth retrying (an HTTP 5xx, a timeout): the node is tried again."""


class Action:
    """Subclass, set the class attributes and implement `run`.

    `run(context, payload)` receives the input payload and returns the ports that fire (a Fire,
    a list of them, or a Wait). It reads the event, profile, session, source and variables from
    the context and changes the profile only through the context (changes apply when the run
    ends). Actions with `concurrent = True` run in a thread of the run's pool (for I/O such as
    HTTP calls) and must not use the database; the others run in the run's own thread.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # Where the editor's palette lists the action, and the icon it draws (a name from
    # static/workflows/icons.js; an unknown name draws a plain box).
    category: ClassVar[str] = "Other"
    icon: ClassVar[str] = ""
    ports: ClassVar[tuple[str, ...]] = ("out",)
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    # Seconds one attempt may take (None: settings.CDP_WORKFLOW_NODE_TIMEOUT).
    timeout: ClassVar[float | None] = None
    retry: ClassVar[Retry] = Retry()
    concurrent: ClassVar[bool] = False
    # Whether string values of the config are rendered as templates before `run`.
    templated: ClassVar[bool] = True

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> list[tuple[str, str]]:
        """Checks beyond the JSON schema, as (field, message) pairs."""
        return []

    @classmethod
    def is_concurrent(cls, config: dict[str, Any]) -> bool:
        """Whether a node with this config runs in the pool (`concurrent`, unless the config
        needs the database)."""
        return cls.concurrent

    def timeout_seconds(self, default: float) -> float:
        return self.timeout if self.timeout is not None else default

    def retry_policy(self) -> Retry:
        return self.retry

    def run(self, context: NodeContext, payload: Any) -> Fire | Wait | list[Fire]:
        raise NotImplementedError(f"{type(self).__name__} must implement run()")

    @classmethod
    def all_ports(cls) -> tuple[str, ...]:
        return cls.ports if ERROR_PORT in cls.ports else (*cls.ports, ERROR_PORT)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """The registry entry the API and admin show."""
        return {
            "name": cls.name,
            "description": cls.description,
            "category": cls.category,
            "icon": cls.icon,
            "ports": list(cls.all_ports()),
            "config_schema": cls.config_schema,
            "concurrent": cls.concurrent,
            "templated": cls.templated,
        }
