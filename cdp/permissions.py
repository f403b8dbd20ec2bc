"""Who may call the management API: Django model permissions per view, plus named permissions
for the actions that are more than a read or a change (publish, rotate a key, run a test).

Every API view gets `ModelPermissions` (REST_FRAMEWORK's DEFAULT_PERMISSION_CLASSES):
- the model comes from `permission_model` on the view, else from its queryset;
- GET/HEAD/OPTIONS need `<app>.view_<model>`, POST `add_`, PUT/PATCH `change_`, DELETE `delete_`;
- an extra action (`@action`) decorated with `@requires(...)` needs exactly the permissions it
  names instead (per HTTP method when given as keywords).

The admin checks the same named permissions through `user_has_perms` (see each app's admin).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.db import models
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import DjangoModelPermissions
from rest_framework.request import Request

F = TypeVar("F", bound=Callable[..., Any])

READ_METHODS = ("GET", "HEAD", "OPTIONS")


def requires(*perms: str, **by_method: str | Iterable[str]) -> Callable[[F], F]:
    """Declare the permissions a view action needs, replacing the method-based ones.

    `@requires("workflows.publish_workflow")`: every method of the action needs it.
    `@requires(GET="segments.view_segment", POST="segments.change_segment")`: per method
    (a method not named is refused)."""

    table: dict[str, tuple[str, ...]] = {}
    for method, needed in by_method.items():
        table[method.upper()] = (needed,) if isinstance(needed, str) else tuple(needed)
    if "GET" in table:
        table.setdefault("HEAD", table["GET"])
        table.setdefault("OPTIONS", table["GET"])

    def decorate(func: F) -> F:
        func.required_permissions = (tuple(perms), table)  # type: ignore[attr-defined]
        return func

    return decorate


def action_permissions(view: Any, method: str) -> tuple[str, ...] | None:
    """The permissions `@requires` declared for the view's current action and this method,
    None when the action declares none (the model permissions apply)."""
    handler = getattr(view, getattr(view, "action", None) or "", None)
    declared = getattr(handler, "required_permissions", None)
    if declared is None:
        return None
    everywhere, table = declared
    if table:
        return (*everywhere, *table.get(method, ("cdp.method_not_declared",)))
    return everywhere


def model_permissions(model: type[models.Model], method: str) -> tuple[str, ...]:
    """The Django permissions a method needs on a model."""
    verb = {
        "GET": "view",
        "HEAD": "view",
        "OPTIONS": "view",
        "POST": "add",
        "PUT": "change",
        "PATCH": "change",
        "DELETE": "delete",
    }.get(method)
    if verb is None:
        return ("cdp.method_not_allowed",)
    return (f"{model._meta.app_label}.{verb}_{model._meta.model_name}",)


def user_has_perms(user: Any, perms: Iterable[str]) -> bool:
    return bool(user and user.is_active and user.has_perms(list(perms)))


def require_perm(user: Any, perm: str, why: str) -> None:
    """Refuse (403, naming the permission) when the user lacks it; for checks inside a view
    that depend on the input (a filter reading private traits, ...)."""
    if not user_has_perms(user, [perm]):
        raise PermissionDenied(f"{why} needs the permission {perm}")


class ModelPermissions(DjangoModelPermissions):
    """Django model permissions, with `view_` required for reads and `@requires` per action."""

    def _model(self, view: Any) -> type[models.Model]:
        model = getattr(view, "permission_model", None)
        if model is not None:
            return model
        queryset = getattr(view, "queryset", None)
        if queryset is None:
            queryset = view.get_queryset()
        return queryset.model

    def needed(self, request: Request, view: Any) -> tuple[str, ...]:
        declared = action_permissions(view, request.method or "")
        if declared is not None:
            return declared
        return model_permissions(self._model(view), request.method or "")

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        needed = self.needed(request, view)
        if user_has_perms(user, needed):
            return True
        missing = [perm for perm in needed if not user.has_perm(perm)] or list(needed)
        self.message = f"This needs the permission {', '.join(missing)}"
        return False
