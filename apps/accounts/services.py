"""Writes on API tokens: create (the token is returned once) and revoke."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.utils import timezone

from apps.accounts.models import PREFIX_LENGTH, ApiToken, token_digest
from cdp.errors import DomainError

TOKEN_PREFIX = "cdp_"  # noqa: S105 (a marker, not a secret)
MAX_EXPIRES_DAYS = 3650
MAX_NAME_LENGTH = 200


def api_token_create(
    *, user: Any, name: str, expires_days: int | None = None
) -> tuple[ApiToken, str]:
    """A new token for the user. Returns the row and the token, which is not stored and
    cannot be shown again."""
    if not user.is_active:
        raise DomainError("the user is inactive", field="user")
    if not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise DomainError(f"a name of 1 to {MAX_NAME_LENGTH} characters", field="name")
    if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRES_DAYS:
        raise DomainError(
            f"expires_days must be between 1 and {MAX_EXPIRES_DAYS}", field="expires_days"
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user=user,
        name=name,
        prefix=token[:PREFIX_LENGTH],
        digest=token_digest(token),
        expires_at=timezone.now() + timedelta(days=expires_days) if expires_days else None,
    )
    row.full_clean()
    row.save()
    return row, token


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
