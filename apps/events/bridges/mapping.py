"""A bridge's mapping applied to received JSON: paths, templates and literals (the syntax is
checked when the source is saved, by apps.sources.bridges.mapping_errors)."""

from __future__ import annotations

import re
from typing import Any

import orjson

from apps.sources.bridges import MAPPED_FIELDS, TEMPLATE_PART

_STEP = re.compile(r"\.([A-Za-z0-9_$@-]+)|\[(\d+)\]")
_MISSING = object()


def path_get(document: Any, path: str) -> Any:
    """The value at a path like $.data.items[0].id, or None when any step is missing."""
    value = document
    for key, index in _STEP.findall(path[1:]):
        if key and isinstance(value, dict):
            value = value.get(key, _MISSING)
        elif index and isinstance(value, list):
            position = int(index)
            value = value[position] if position < len(value) else _MISSING
        elif key.isdigit() and isinstance(value, list):  # $.items.0 reads as $.items[0]
            position = int(key)
            value = value[position] if position < len(value) else _MISSING
        else:
            return None
        if value is _MISSING:
            return None
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def evaluate(expression: str, document: Any) -> Any:
    """A path's value as it is; a template's text with each path's value in place; else the
    literal."""
    if expression.startswith("$") and "{{" not in expression:
        return path_get(document, expression)
    if "{{" in expression:
        return TEMPLATE_PART.sub(lambda m: _text(path_get(document, m.group(1))), expression)
    return expression


def apply_mapping(mapping: dict[str, Any], document: Any) -> Any:
    """The native event (as POST /api/track takes it) that the mapping makes of a document.
    Without a mapping the document is taken as a native body already."""
    if not any(name in mapping for name in MAPPED_FIELDS):
        return document
    event: dict[str, Any] = {}
    for name in ("event_name", "distinct_id", "message_id", "timestamp"):
        if name in mapping:
            value = evaluate(mapping[name], document)
            if value is not None and value != "":
                event[name] = value
    properties = mapping.get("properties")
    if isinstance(properties, dict):
        event["properties"] = {
            name: evaluate(expression, document) for name, expression in properties.items()
        }
    elif isinstance(properties, str):
        event["properties"] = evaluate(properties, document)
    return event
