"""PATH syntax: where a property leaf reads its value (profile fields, traits, events, groups)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from apps.events.models import SESSION_ENTRY_FIELDS

MAX_PATH_LENGTH = 300
MAX_KEYS = 10
MAX_KEY_LENGTH = 100

# A key that prints without quotes; any other key is written in double quotes (`traits."a.b"`).
BARE_KEY = re.compile(r"[A-Za-z0-9_$-]+")

FieldType = Literal["string", "number", "boolean", "date", "uuid", "json"]

# Profile columns a path can name directly, with their type.
PROFILE_FIELDS: dict[str, FieldType] = {
    "first_seen": "date",
    "last_seen": "date",
    "event_count": "number",
    "session_count": "number",
    "identified": "boolean",
}

# Event columns under `event.`: path name -> (model field, type).
EVENT_FIELDS: dict[str, tuple[str, FieldType]] = {
    "name": ("event_name", "string"),
    "distinct_id": ("distinct_id", "string"),
    "category": ("category", "string"),
    "session_key": ("session_key", "string"),
    "source": ("source_id", "uuid"),
    "timestamp": ("timestamp", "date"),
}
EVENT_JSON_FIELDS = ("properties", "context")

# Session fields under `event.session.` (text columns where "" means unknown).
SESSION_FIELDS = SESSION_ENTRY_FIELDS

ROOTS = ("traits", "private_traits", "event", "groups", "scores", *PROFILE_FIELDS)

# `scores.<name>`: a predictive score's latest value (0..1) for the profile.
SCORE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


class PathError(ValueError):
    """A PATH that doesn't parse or names nothing; the parser turns it into a FilterError."""


@dataclass(frozen=True)
class Path:
    """A parsed PATH.

    kind: "profile_field" (column=name), "traits"/"private_traits" (keys into the JSON),
    "event_field" (column), "event_json" (column=properties|context, keys), "session_field"
    (column), "group_id" / "group_json" (group_type, keys), "score" (keys=(score name,)).
    """

    kind: str
    column: str
    type: FieldType
    keys: tuple[str, ...] = ()
    group_type: str = ""

    @property
    def is_event(self) -> bool:
        return self.kind in ("event_field", "event_json", "session_field")

    def __str__(self) -> str:
        return format_path(self)


def _quote(key: str) -> str:
    return key if BARE_KEY.fullmatch(key) else f'"{key}"'


def format_path(path: Path) -> str:
    """The canonical spelling of a path (bare keys where possible)."""
    keys = [_quote(k) for k in path.keys]
    if path.kind == "profile_field":
        return path.column
    if path.kind in ("traits", "private_traits"):
        return ".".join([path.kind, *keys])
    if path.kind == "event_field":
        name = next(n for n, (col, _) in EVENT_FIELDS.items() if col == path.column)
        return f"event.{name}"
    if path.kind == "event_json":
        return ".".join(["event", path.column, *keys])
    if path.kind == "session_field":
        return f"event.session.{path.column}"
    if path.kind == "group_id":
        return f"groups.{_quote(path.group_type)}.id"
    if path.kind == "score":
        return f"scores.{path.keys[0]}"
    return ".".join(["groups", _quote(path.group_type), "properties", *keys])


def split_path(text: str) -> list[str]:
    """Split on dots outside double quotes; quoted segments lose their quotes."""
    if not isinstance(text, str) or not text:
        raise PathError("a path is a non-empty string such as traits.plan")
    if len(text) > MAX_PATH_LENGTH:
        raise PathError(f"a path has at most {MAX_PATH_LENGTH} characters")
    parts: list[str] = []
    i = 0
    while True:
        if i < len(text) and text[i] == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise PathError(f"unclosed quote in path {text!r}")
            parts.append(text[i + 1 : end])
            i = end + 1
        else:
            match = BARE_KEY.match(text, i)
            if not match:
                raise PathError(f"bad path {text!r}: expected a name at character {i}")
            parts.append(match.group())
            i = match.end()
        if i == len(text):
            return parts
        if text[i] != ".":
            raise PathError(f"bad path {text!r}: expected '.' at character {i}")
        i += 1


def _check_keys(keys: list[str], text: str) -> tuple[str, ...]:
    if not keys:
        raise PathError(f"{text!r} needs a key after it, e.g. {text}.plan")
    if len(keys) > MAX_KEYS:
        raise PathError(f"a path goes at most {MAX_KEYS} keys deep")
    for key in keys:
        if not key or len(key) > MAX_KEY_LENGTH:
            raise PathError(f"a key has 1 to {MAX_KEY_LENGTH} characters")
        if any(ch in key for ch in '"\\') or any(ord(ch) < 32 for ch in key):
            raise PathError(f"a key can't hold quotes, backslashes or control characters: {key!r}")
    return tuple(keys)


def parse_path(text: str) -> Path:
    """Parse a PATH string; raises PathError saying what is wrong."""
    parts = split_path(text)
    root, rest = parts[0], parts[1:]
    if root in PROFILE_FIELDS:
        if rest:
            raise PathError(f"{root} is a profile field without keys")
        return Path("profile_field", root, PROFILE_FIELDS[root])
    if root in ("traits", "private_traits"):
        return Path(root, root, "json", _check_keys(rest, root))
    if root == "event":
        return _event_path(rest, text)
    if root == "groups":
        return _group_path(rest, text)
    if root == "scores":
        if len(rest) != 1 or not SCORE_NAME.fullmatch(rest[0]):
            raise PathError(
                "use scores.<score name>, e.g. scores.purchase_14d (a name is lowercase letters, "
                "digits and _)"
            )
        return Path("score", "value", "number", (rest[0],))
    raise PathError(f"unknown path root {root!r}: use one of {', '.join(ROOTS)}")


def _event_path(rest: list[str], text: str) -> Path:
    if not rest:
        raise PathError("event needs a field: event.name, event.properties.amount, ...")
    field, keys = rest[0], rest[1:]
    if field in EVENT_JSON_FIELDS:
        return Path("event_json", field, "json", _check_keys(keys, f"event.{field}"))
    if field == "session":
        if len(keys) != 1 or keys[0] not in SESSION_FIELDS:
            raise PathError(f"event.session has the fields {', '.join(SESSION_FIELDS)}")
        return Path("session_field", keys[0], "string")
    if field in EVENT_FIELDS and not keys:
        column, type_ = EVENT_FIELDS[field]
        return Path("event_field", column, type_)
    names = [*EVENT_FIELDS, *EVENT_JSON_FIELDS, "session"]
    raise PathError(f"unknown event field in {text!r}: use one of {', '.join(names)}")


def _group_path(rest: list[str], text: str) -> Path:
    if len(rest) < 2:
        raise PathError("use groups.<group type>.id or groups.<group type>.properties.<key>")
    group_type, field, keys = rest[0], rest[1], rest[2:]
    _check_keys([group_type], text)
    if field == "id" and not keys:
        return Path("group_id", "group_id", "string", group_type=group_type)
    if field == "properties":
        return Path(
            "group_json", "properties", "json", _check_keys(keys, text), group_type=group_type
        )
    raise PathError(f"unknown group field in {text!r}: use id or properties.<key>")
