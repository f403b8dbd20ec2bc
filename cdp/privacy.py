"""Private traits (PII) stay out of what users without `profiles.view_private_traits` see.

Two rules, applied to any JSON shown (traces, variables, test results, raw event payloads):
- by key: `private_traits` objects, `$set_private` payloads and private trait names inside
  `$set` / `$set_once` (settings.CDP_PRIVATE_TRAITS) are replaced by a marker;
- by value: strings holding a known private value of the person (an email rendered into a
  template, a URL, a message) have that value replaced, so a template output cannot carry it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings

VIEW_PRIVATE_TRAITS = "profiles.view_private_traits"
REDACTED = "[private]"
# Shorter values (a one-letter initial, "1") would blank unrelated text everywhere.
MIN_VALUE_LENGTH = 3
_PRIVATE_KEYS = ("private_traits", "$set_private")
_SET_KEYS = ("$set", "$set_once")


def can_see_private(user: Any) -> bool:
    return bool(user is not None and user.is_active and user.has_perm(VIEW_PRIVATE_TRAITS))


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def private_values(*sources: Any) -> frozenset[str]:
    """The private values found in private-trait dicts or event properties: what must not
    appear in text shown to users without the permission."""
    found: set[str] = set()
    private_names = set(settings.CDP_PRIVATE_TRAITS)
    for source in sources:
        if not isinstance(source, dict):
            continue
        if "$set_private" in source or any(k in source for k in _SET_KEYS):
            found.update(_leaves(source.get("$set_private")))
            for key in _SET_KEYS:
                if isinstance(source.get(key), dict):
                    found.update(
                        _leaves({k: v for k, v in source[key].items() if k in private_names})
                    )
        else:
            found.update(_leaves(source))
    return frozenset(v for v in found if len(v) >= MIN_VALUE_LENGTH)


def redact_json(value: Any, values: Iterable[str] = ()) -> Any:
    """A copy of a JSON value with private keys and private values replaced."""
    ordered = sorted(set(values), key=len, reverse=True)  # "ann@x.com" before "ann"
    return _redact(value, ordered, set(settings.CDP_PRIVATE_TRAITS))


def _redact(value: Any, values: list[str], private_names: set[str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in _PRIVATE_KEYS:
                out[key] = REDACTED if item else item
            elif key in _SET_KEYS and isinstance(item, dict):
                out[key] = {
                    k: (REDACTED if k in private_names else _redact(v, values, private_names))
                    for k, v in item.items()
                }
            else:
                out[key] = _redact(item, values, private_names)
        return out
    if isinstance(value, list):
        return [_redact(item, values, private_names) for item in value]
    if isinstance(value, str):
        for secret in values:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if values and not isinstance(value, bool) and str(value) in values:
        return REDACTED  # a private number (a phone stored as digits)
    return value


# Admin pages render after the view returns; this carries "redact for this page" to the
# display methods of the objects shown (set in change_view, read by the displays).
_page_redaction: ContextVar[frozenset[str] | None] = ContextVar("page_redaction", default=None)


@contextmanager
def redacting(values: Iterable[str]) -> Iterator[None]:
    token = _page_redaction.set(frozenset(values))
    try:
        yield
    finally:
        _page_redaction.reset(token)


def shown(value: Any) -> Any:
    """The value as the current page may show it (redacted inside `redacting(...)`)."""
    values = _page_redaction.get()
    return value if values is None else redact_json(value, values)
