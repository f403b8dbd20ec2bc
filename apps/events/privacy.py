"""Private traits on events: identify and people calls carry PII that some users may not see."""

from __future__ import annotations

from typing import Any

from django.conf import settings


def redact_private(properties: Any) -> Any:
    """An event's properties without the private traits identify and people calls carry
    ($set_private, and private names inside $set / $set_once), for users who may not see PII."""
    if not isinstance(properties, dict):
        return properties
    private = set(settings.CDP_PRIVATE_TRAITS)
    redacted = {k: v for k, v in properties.items() if k != "$set_private"}
    for key in ("$set", "$set_once"):
        if isinstance(redacted.get(key), dict):
            redacted[key] = {k: v for k, v in redacted[key].items() if k not in private}
    return redacted
