"""Writes on resources: create and change them (credentials merged, never echoed), test the
connection, rotate a webhook signing secret."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.destinations.connections import (
    ConnectionFailed,
    connection_test,
    credentials_check,
    credentials_merge,
    signing_secret_new,
)
from apps.destinations.models import Resource, ResourceKind
from cdp.errors import DomainError

MAX_NAME = 200


def _check(kind: str, credentials: dict[str, Any], test_credentials: dict[str, Any]) -> None:
    if kind not in ResourceKind.values:
        raise DomainError(
            f"Unknown resource kind {kind!r} (one of {', '.join(ResourceKind.values)})",
            field="kind",
        )
    for field, creds in (("credentials", credentials), ("test_credentials", test_credentials)):
        errors = credentials_check(kind, creds, field)
        if errors:
            where, message = errors[0]
            raise DomainError(f"{where}: {message}", field=where)
    if not credentials:
        raise DomainError("credentials: are required", field="credentials")


def resource_create(
    *,
    name: str,
    kind: str,
    credentials: dict[str, Any],
    test_credentials: dict[str, Any] | None = None,
    description: str = "",
    internal: bool = False,
) -> Resource:
    test_credentials = test_credentials or {}
    _check(kind, credentials, test_credentials)
    if Resource.objects.filter(name=name).exists():
        raise DomainError(f"A resource named {name!r} exists", field="name", code="duplicate")
    resource = Resource(name=name, kind=kind, description=description, internal=internal)
    resource.credentials = credentials
    resource.test_credentials = test_credentials
    resource.save()
    return resource


def resource_update(
    *,
    resource: Resource,
    name: str | None = None,
    credentials: dict[str, Any] | None = None,
    test_credentials: dict[str, Any] | None = None,
    description: str | None = None,
    internal: bool | None = None,
) -> Resource:
    """Change a resource. Credentials sent are merged: a value equal to the mask (what the
    admin and the API show) keeps the stored secret."""
    with transaction.atomic():
        resource = Resource.objects.select_for_update().get(pk=resource.pk)
        new_credentials = credentials_merge(resource.credentials, credentials)
        new_test = credentials_merge(resource.test_credentials, test_credentials)
        _check(resource.kind, new_credentials, new_test)
        if name is not None and name != resource.name:
            if Resource.objects.filter(name=name).exclude(pk=resource.pk).exists():
                raise DomainError(
                    f"A resource named {name!r} exists", field="name", code="duplicate"
                )
            resource.name = name
        resource.credentials = new_credentials
        resource.test_credentials = new_test
        if description is not None:
            resource.description = description
        if internal is not None:
            resource.internal = internal
        resource.save()
    return resource


def resource_delete(*, resource: Resource) -> None:
    if resource.destinations.exists():
        names = ", ".join(resource.destinations.values_list("name", flat=True)[:5])
        raise DomainError(
            f"Resource {resource.name!r} is used by destinations ({names}): delete or move "
            "them first",
            code="in_use",
            status_code=409,
        )
    resource.delete()


def resource_test(*, resource: Resource) -> dict[str, Any]:
    """Test the production and (when set) the test credentials: {"production": {...}, ...}."""
    out: dict[str, Any] = {}
    for label, creds in (
        ("production", resource.credentials),
        ("test", resource.test_credentials),
    ):
        if label == "test" and not creds:
            continue
        try:
            out[label] = {
                "ok": True,
                "message": connection_test(resource.kind, creds, allow_internal=resource.internal),
            }
        except ConnectionFailed as exc:
            out[label] = {"ok": False, "message": str(exc)}
    return out


ROTATION_GRACE = timedelta(hours=24)


def signing_secret_check(secret: Any) -> str:
    """A Standard Webhooks secret: `whsec_` and at least 24 random bytes in base64."""
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        raise DomainError("secret: must start with whsec_", field="secret")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise DomainError("secret: what follows whsec_ must be base64", field="secret") from None
    if len(key) < 24:
        raise DomainError("secret: must hold at least 24 random bytes", field="secret")
    return secret


def resource_rotate_signing_secret(
    *, resource: Resource, secret: str | None = None, test: bool = False
) -> str:
    """Sign with a new webhook secret from now on; the previous ones keep signing for 24 hours
    (several signatures per message) so that receivers can switch over. The API takes the
    new secret from the caller (it never sends a secret back); without one a new secret is
    made (the admin and code that hand it over themselves). Returns the secret."""
    if resource.kind != ResourceKind.WEBHOOK:
        raise DomainError("Only webhook resources have signing secrets", field="kind")
    secret = signing_secret_check(secret) if secret is not None else signing_secret_new()
    with transaction.atomic():
        resource = Resource.objects.select_for_update().get(pk=resource.pk)
        field = "test_credentials" if test else "credentials"
        creds = dict(getattr(resource, field) or {})
        if not creds:
            raise DomainError(f"The resource has no {field.replace('_', ' ')}", field=field)
        now = timezone.now()
        expires = (now + ROTATION_GRACE).isoformat()
        old = [
            {"secret": item["secret"], "expires_at": item.get("expires_at") or expires}
            for item in creds.get("signing_secrets") or []
            if not item.get("expires_at") or datetime.fromisoformat(item["expires_at"]) > now
        ]
        creds["signing_secrets"] = [{"secret": secret, "expires_at": None}, *old]
        setattr(resource, field, creds)
        resource.save(update_fields=[field, "updated_at"])
    return secret
