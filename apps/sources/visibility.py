"""Who sees a write key in full: users who may change the source; the others see it masked."""

from __future__ import annotations

from typing import Any

CHANGE_SOURCE = "sources.change_eventsource"
MASK_EXAMPLE = "Xy3q…9Z"


def mask_write_key(key: str) -> str:
    """The first 4 and last 2 characters: enough to tell keys apart, useless to send events."""
    if len(key) <= 8:
        return "…"
    return f"{key[:4]}…{key[-2:]}"


def may_see_write_key(user: Any) -> bool:
    return bool(user is not None and user.is_active and user.has_perm(CHANGE_SOURCE))


def write_key_for(user: Any, key: str) -> str:
    return key if may_see_write_key(user) else mask_write_key(key)
