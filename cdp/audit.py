"""Changes made through the management API are recorded like the admin's: one LogEntry (who,
what, when, a change message) per successful write, shown in the admin's history and log."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import models
from rest_framework.request import Request
from rest_framework.response import Response

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def audit_log(
    *,
    user: Any,
    obj: models.Model,
    action_flag: int,
    message: str,
) -> LogEntry:
    return LogEntry.objects.create(
        user_id=user.pk,
        content_type=ContentType.objects.get_for_model(type(obj)),
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        action_flag=action_flag,
        change_message=message,
    )


def _fields(data: Any) -> list[str]:
    """The field names a request sent, printable and bounded (a body's keys are the client's:
    a NUL cannot be stored in PostgreSQL text, and a message must stay readable)."""
    if not isinstance(data, dict):
        return []
    names = sorted({"".join(c for c in str(key) if c.isprintable())[:100] for key in data})
    return names[:50]


class AuditMixin:
    """For API viewsets: each successful POST/PUT/PATCH/DELETE writes a LogEntry for the
    object it touched (found by the URL for item routes, by the response for creations).
    Actions that change nothing (previews, rolled-back test runs) are named in
    `audit_skip_actions`."""

    audit_skip_actions: frozenset[str] = frozenset()
    _audit_target: models.Model | None = None

    def _audited(self, request: Request) -> bool:
        action = getattr(self, "action", None)
        return request.method in WRITE_METHODS and action not in self.audit_skip_actions

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        self._audit_target = None
        lookup = getattr(self, "lookup_url_kwarg", None) or getattr(self, "lookup_field", "pk")
        if self._audited(request) and lookup in kwargs:
            # Before the change: a deleted object has no row left to describe.
            self._audit_target = self.get_object()  # type: ignore[attr-defined]

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        if self._audited(request) and 200 <= response.status_code < 300:
            self._audit(request, response)
        return response

    def _audit(self, request: Request, response: Response) -> None:
        action = getattr(self, "action", None) or str(request.method).lower()
        target = self._audit_target
        if target is None:
            target = self._created(response)
            if target is None:
                return
            flag, message = ADDITION, "Added through the API."
        elif request.method == "DELETE" and action == "destroy":
            flag, message = DELETION, "Deleted through the API."
        elif action in ("partial_update", "update"):
            fields = _fields(request.data)
            flag = CHANGE
            message = f"Changed {', '.join(fields) or 'nothing'} through the API."
        else:
            flag = CHANGE
            fields = _fields(request.data)
            detail = f" ({', '.join(fields)})" if fields else ""
            message = f"{action} {request.method}{detail} through the API."
        audit_log(user=request.user, obj=target, action_flag=flag, message=message)

    def _created(self, response: Response) -> models.Model | None:
        data = response.data if isinstance(response.data, dict) else {}
        model = getattr(self, "permission_model", None) or self.get_queryset().model  # type: ignore[attr-defined]
        for field in ("id", getattr(self, "lookup_field", "pk")):
            if data.get(field) is not None:
                return model.objects.filter(**{field: data[field]}).first()
        return None
