"""Checking a call's arguments and turning it into a message of the server's native wire format.

Every check runs at call time, in the caller's thread, so a bad argument raises there (a
TypeError or ValueError naming the argument) instead of failing later in the background. A
message is serialized to JSON at once, which also freezes the caller's dicts as they were.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

# The server's limits (its defaults): larger values are refused there, so they are refused here.
MAX_DISTINCT_ID = 200
MAX_EVENT_NAME = 255
MAX_CATEGORY = 64
MAX_MESSAGE_ID = 200
MAX_SESSION_ID = 200
MAX_GROUP_ID = 200
MAX_EVENT_BYTES = 32 * 1024
GROUP_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")

# Ids that broken code sends when it has no id; the server refuses them, since they would merge
# strangers into one person.
PLACEHOLDER_IDS = frozenset(
    {
        "null",
        "undefined",
        "none",
        "nil",
        "nan",
        "0",
        "-1",
        "anonymous",
        "anon",
        "guest",
        "unknown",
        "[object object]",
        "distinct_id",
        "id",
        "user",
        "user_id",
        "not_authenticated",
        "email",
        "true",
        "false",
        "''",
        '""',
    }
)

TRACK_PATH = "/api/track"
IDENTIFY_PATH = "/api/identify"
ALIAS_PATH = "/api/alias"
PEOPLE_PATH = "/api/people"
GROUPS_PATH = "/api/groups"
GROUP_PROPERTIES_PATH = "/api/groups/properties"

# The people operations of the server, in the order it applies them within one call.
PEOPLE_OPERATIONS = ("set_once", "set", "increment", "append", "union", "remove", "unset")


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """One call, ready to send: the endpoint and the call's JSON object.

    Track messages (`batchable`) share `{"batch": [...]}` requests; the others are sent one per
    request, in the order they were made."""

    path: str
    data: bytes
    message_id: str | None = None
    batchable: bool = False
    takes_sent_at: bool = False

    def body(self, sent_at: str) -> bytes:
        """The request body of this message alone, stamped with the time it is sent at."""
        if not self.takes_sent_at:
            return self.data
        return self.data[:-1] + b',"sent_at":"' + sent_at.encode() + b'"}'


def batch_body(messages: Iterable[Message], sent_at: str, context: bytes) -> bytes:
    """One `POST /api/track` body for several track messages (`sent_at` lets the server correct
    the clock skew of this host; `context` is shared by every event of the batch)."""
    events = b",".join(m.data for m in messages)
    return (
        b'{"batch":['
        + events
        + b'],"sent_at":"'
        + sent_at.encode()
        + b'","context":'
        + context
        + b"}"
    )


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(
        f"a value of type {type(value).__name__} cannot be sent as JSON: convert it to a "
        "string, number, boolean, list or dict"
    )


# One encoder for every call (json.dumps with options builds a new one each time).
_ENCODER = json.JSONEncoder(
    default=_json_default, allow_nan=False, ensure_ascii=False, separators=(",", ":")
)


def to_json(value: Any, argument: str) -> bytes:
    """Compact JSON of a call's value; the error names the argument at fault."""
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except TypeError as exc:
        raise TypeError(f"{argument}: {exc}") from None
    except ValueError as exc:  # NaN or infinity, or a circular reference
        raise ValueError(f"{argument}: {exc} (JSON has no NaN, infinity or cycles)") from None
    except UnicodeEncodeError:
        raise ValueError(f"{argument}: holds text that is not valid Unicode") from None


def clean_text(value: Any, argument: str, *, max_length: int, allow_int: bool = False) -> str:
    """A non-blank string of at most max_length characters (integers accepted as ids)."""
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        kinds = "a string or an integer" if allow_int else "a string"
        raise TypeError(f"{argument} must be {kinds}, not {type(value).__name__}")
    cleaned = value.strip()
    if not cleaned:
        raise ValueError(f"{argument} must not be empty")
    if len(cleaned) > max_length:
        raise ValueError(f"{argument} is {len(cleaned)} characters long; the limit is {max_length}")
    if "\x00" in cleaned:
        raise ValueError(f"{argument} must not contain NUL characters")
    return cleaned


def clean_distinct_id(value: Any, argument: str = "distinct_id") -> str:
    """A person's id: a real id, never a placeholder such as "null" or "anonymous"."""
    cleaned = clean_text(value, argument, max_length=MAX_DISTINCT_ID, allow_int=True)
    if cleaned.lower() in PLACEHOLDER_IDS:
        raise ValueError(
            f"{argument} {cleaned!r} is a placeholder, not an id: pass the user's real id, or "
            "an anonymous id you generated for them"
        )
    return cleaned


def clean_mapping(value: Any, argument: str) -> dict[str, Any]:
    """A dict with string keys (None is an empty dict)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{argument} must be a dict, not {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"{argument} keys must be strings, not {type(key).__name__} ({key!r})")
    return dict(value)


def clean_timestamp(value: Any, argument: str = "timestamp") -> str:
    """ISO-8601 of an aware datetime (None is now)."""
    if value is None:
        return now_iso()
    if not isinstance(value, datetime):
        raise TypeError(f"{argument} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{argument} must be timezone-aware (e.g. datetime.now(UTC)): a naive datetime's "
            "zone is unknown"
        )
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def clean_message_id(value: Any) -> str:
    if value is None:
        return uuid.uuid4().hex
    return clean_text(value, "message_id", max_length=MAX_MESSAGE_ID)


def clean_group_key(value: Any) -> str:
    cleaned = clean_text(value, "group_key", max_length=100)
    if not GROUP_KEY.match(cleaned):
        raise ValueError(
            f"group_key {cleaned!r} must be lowercase letters, digits, - or _ (e.g. company)"
        )
    return cleaned


def clean_group_id(value: Any) -> str:
    return clean_text(value, "group_id", max_length=MAX_GROUP_ID, allow_int=True)


def _message(path: str, payload: dict[str, Any], argument: str, **fields: Any) -> Message:
    return Message(path=path, data=to_json(payload, argument), **fields)


def track(
    *,
    distinct_id: Any,
    event_name: Any,
    properties: Any,
    category: Any,
    timestamp: Any,
    context: Any,
    message_id: Any,
    session_id: Any,
    groups: Any,
) -> Message:
    """An event for `POST /api/track` (sent in batches)."""
    person = clean_distinct_id(distinct_id)
    name = clean_text(event_name, "event_name", max_length=MAX_EVENT_NAME)
    props = clean_mapping(properties, "properties")
    if groups is not None:
        memberships = clean_mapping(groups, "groups")
        for key, gid in memberships.items():
            clean_group_key(key)
            memberships[key] = clean_group_id(gid)
        props["$groups"] = memberships
    event: dict[str, Any] = {
        "event_name": name,
        "distinct_id": person,
        "category": clean_text(category, "category", max_length=MAX_CATEGORY),
        "timestamp": clean_timestamp(timestamp),
        "message_id": clean_message_id(message_id),
    }
    if session_id is not None:
        event["session_id"] = clean_text(session_id, "session_id", max_length=MAX_SESSION_ID)
    event["properties"] = props
    event["context"] = clean_mapping(context, "context")
    try:
        data = _ENCODER.encode(event).encode("utf-8")
    except (TypeError, ValueError):
        # Name the argument at fault (only the properties and the context can be).
        to_json(props, "properties")
        to_json(event["context"], "context")
        raise
    if len(data) > MAX_EVENT_BYTES:
        # What the server counts: the properties, the context, the name and the id.
        size = (
            len(to_json(props, "properties"))
            + len(to_json(event["context"], "context"))
            + len(name)
            + len(person)
        )
        if size > MAX_EVENT_BYTES:
            raise ValueError(
                f"the event is {size} bytes; the server's limit is {MAX_EVENT_BYTES} per event: "
                "send fewer or smaller properties"
            )
    return Message(path=TRACK_PATH, data=data, message_id=event["message_id"], batchable=True)


def identify(
    *,
    distinct_id: Any,
    traits: Any,
    private_traits: Any,
    anonymous_id: Any,
    timestamp: Any,
    context: Any,
    message_id: Any,
) -> Message:
    """`POST /api/identify`: links an anonymous id and sets traits (deduped by message id)."""
    payload: dict[str, Any] = {
        "distinct_id": clean_distinct_id(distinct_id),
        "traits": clean_mapping(traits, "traits"),
        "private_traits": clean_mapping(private_traits, "private_traits"),
        "timestamp": clean_timestamp(timestamp),
        "message_id": clean_message_id(message_id),
        "context": clean_mapping(context, "context"),
    }
    if anonymous_id is not None:
        payload["anonymous_id"] = clean_distinct_id(anonymous_id, "anonymous_id")
    return _message(
        IDENTIFY_PATH,
        payload,
        "traits",
        message_id=payload["message_id"],
        takes_sent_at=True,
    )


def alias(*, distinct_id: Any, alias: Any, timestamp: Any, message_id: Any) -> Message:
    """`POST /api/alias`: another id of the same person (deduped by message id)."""
    payload = {
        "distinct_id": clean_distinct_id(distinct_id),
        "alias": clean_distinct_id(alias, "alias"),
        "timestamp": clean_timestamp(timestamp),
        "message_id": clean_message_id(message_id),
    }
    return _message(
        ALIAS_PATH, payload, "alias", message_id=payload["message_id"], takes_sent_at=True
    )


def _number(value: Any, argument: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TypeError(f"{argument} must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{argument} must be a finite number")


def people(*, distinct_id: Any, ops: Mapping[str, Any], delete: bool, timestamp: Any) -> Message:
    """`POST /api/people`: trait operations with Mixpanel's semantics, applied at once."""
    payload: dict[str, Any] = {"distinct_id": clean_distinct_id(distinct_id)}
    for op in PEOPLE_OPERATIONS:
        value = ops.get(op)
        if value is None:
            continue
        if op == "unset":
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise TypeError(f"unset takes a list of trait names, not {type(value).__name__}")
            names = list(value)
            for name in names:
                if not isinstance(name, str) or not name:
                    raise TypeError(f"unset: trait names must be non-empty strings, not {name!r}")
            if names:
                payload[op] = names
            continue
        values = clean_mapping(value, op)
        if op == "increment":
            for key, amount in values.items():
                _number(amount, f"increment[{key!r}]")
        if values:
            payload[op] = values
    if delete:
        payload["delete"] = True
    if len(payload) == 1:
        raise ValueError(
            "no people operation: pass at least one non-empty "
            f"{', '.join(PEOPLE_OPERATIONS)}, or delete=True"
        )
    payload["timestamp"] = clean_timestamp(timestamp)
    # Sent again unchanged on a retry: the server applies the operation once per message id.
    payload["message_id"] = clean_message_id(None)
    return _message(PEOPLE_PATH, payload, "people operation", message_id=payload["message_id"])


def group_membership(*, distinct_id: Any, group_key: Any, group_id: Any, action: Any) -> Message:
    """`POST /api/groups`: the person joins (add), leaves (remove) or only belongs to (set) it."""
    if action not in ("add", "set", "remove"):
        raise ValueError(f"action must be 'add', 'set' or 'remove', not {action!r}")
    payload = {
        "distinct_id": clean_distinct_id(distinct_id),
        "group_key": clean_group_key(group_key),
        "group_id": clean_group_id(group_id),
        "action": action,
        "message_id": clean_message_id(None),
    }
    return _message(GROUPS_PATH, payload, "group", message_id=payload["message_id"])


def group_properties(*, group_key: Any, group_id: Any, ops: Mapping[str, Any]) -> Message | None:
    """`POST /api/groups/properties`: set, set_once or unset a group's properties (None when
    there is nothing to change)."""
    payload: dict[str, Any] = {
        "group_key": clean_group_key(group_key),
        "group_id": clean_group_id(group_id),
    }
    for op in ("set_once", "set"):
        values = clean_mapping(ops.get(op), f"{op} (group properties)")
        if values:
            payload[op] = values
    unset = ops.get("unset")
    if unset is not None:
        if isinstance(unset, str) or not isinstance(unset, Iterable):
            raise TypeError(f"unset takes a list of property names, not {type(unset).__name__}")
        names = list(unset)
        if not all(isinstance(name, str) and name for name in names):
            raise TypeError("unset: property names must be non-empty strings")
        if names:
            payload["unset"] = names
    if len(payload) == 2:
        return None
    payload["message_id"] = clean_message_id(None)
    return _message(
        GROUP_PROPERTIES_PATH, payload, "group properties", message_id=payload["message_id"]
    )
