"""Template helpers for the dashboard: hiding personal data from users without the private
traits permission (a distinct id, an event property or an identify call's $set can hold one)."""

from __future__ import annotations

import json
import re
from typing import Any

from django import template
from django.conf import settings

register = template.Library()

EMAIL = re.compile(r"[^\s@\"']+@[^\s@\"']+\.[^\s@\"']+")
PHONE = re.compile(r"^\+?[\d\s().-]{7,}$")
MASK = "•••"


def redact(value: Any) -> Any:
    """The value with private trait keys (settings.CDP_PRIVATE_TRAITS) masked at any depth and
    emails and phone numbers masked in strings."""
    if isinstance(value, dict):
        private = set(settings.CDP_PRIVATE_TRAITS)
        return {k: MASK if k in private else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        if PHONE.match(value.strip()):
            return MASK
        return EMAIL.sub(f"{MASK}@{MASK}", value)
    return value


@register.filter
def pii(value: Any, private: bool) -> Any:
    """The value for a user who may (private=True) or may not see personal data; objects and
    lists are shown as JSON."""
    shown = value if private else redact(value)
    if isinstance(shown, dict | list):
        return json.dumps(shown, ensure_ascii=False, sort_keys=True)
    return shown


@register.filter
def duration(seconds: Any) -> str:
    """Seconds as a short duration: 45s, 3.2m, 5.1h, 2.4d."""
    if seconds is None or seconds == "":
        return "—"
    value = float(seconds)
    for limit, unit, size in ((60, "s", 1), (3600, "m", 60), (86400, "h", 3600)):
        if value < limit:
            return f"{value / size:.0f}{unit}" if unit == "s" else f"{value / size:.1f}{unit}"
    return f"{value / 86400:.1f}d"
