"""Reads on API tokens: the lookup that authenticates a request."""

from __future__ import annotations

import hmac

from apps.accounts.models import PREFIX_LENGTH, ApiToken, token_digest


def api_token_get(token: str) -> ApiToken | None:
    """The active token row for a presented token (with its user), or None."""
    if not token or len(token) < PREFIX_LENGTH or len(token) > 200:
        return None
    digest = token_digest(token)
    for row in ApiToken.objects.select_related("user").filter(prefix=token[:PREFIX_LENGTH]):
        if hmac.compare_digest(row.digest, digest):
            return row if row.active else None
    return None
