"""The action registry: the built-in actions and those other packages add through the
`cdp.workflow_actions` entry point group."""

from apps.workflows.actions.base import (
    ERROR_PORT,
    Action,
    ActionError,
    Fire,
    Retry,
    TransientError,
    Wait,
)
from apps.workflows.actions.registry import (
    action_class,
    action_classes,
    register,
    register_extension,
)

__all__ = [
    "ERROR_PORT",
    "Action",
    "ActionError",
    "Fire",
    "Retry",
    "TransientError",
    "Wait",
    "action_class",
    "action_classes",
    "register",
    "register_extension",
]
