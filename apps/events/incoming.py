"""IncomingEvent, the one internal shape every wire format parses into, and its validation.

The validators run on the request path for every event, so they are plain functions over plain
data (no serializer framework): a batch of 1000 events is validated in a few milliseconds.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson

# Property names that collide with fields the trackers capture themselves.
RESERVED_PROPERTIES = frozenset(
    {
        "page",
        "current_url",
        "referrer",
        "timestamp",
        "user_agent",
        "screen_width",
        "viewport_width",
        "page_title",
        "url",
        "href",
    }
)

# Ids that broken clients send when they have no id: they would merge strangers into one person.
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

MAX_EVENT_NAME = 255
MAX_DISTINCT_ID = 200
MAX_MESSAGE_ID = 200
MAX_CATEGORY = 64
MAX_SESSION_ID = 200
_EPOCH_MS_THRESHOLD = 100_000_000_000  # numbers above this are epoch milliseconds


class Rejection(Exception):
    """One event is refused: the field at fault and why."""

    def __init__(self, field: str | None, error: str) -> None:
        super().__init__(error)
        self.field = field
        self.error = error


class OutOfRange:
    """What the tolerant JSON parser puts in place of a number a float cannot hold (1e400).

    orjson refuses to serialize it, so the event holding it is rejected with a clear reason
    while the rest of the batch goes through."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class ProcessableEvent(Protocol):
    """What processing reads of an event: a stored Event or an ephemeral IncomingEvent."""

    @property
    def source_id(self) -> Any: ...
    @property
    def message_id(self) -> str: ...
    @property
    def event_name(self) -> str: ...
    @property
    def distinct_id(self) -> str: ...
    @property
    def timestamp(self) -> datetime: ...
    # A dict on events that passed validation; a stored row's JSON is read with isinstance.
    @property
    def properties(self) -> Any: ...
    @property
    def context(self) -> Any: ...
    @property
    def session_key(self) -> str: ...
    @property
    def platform(self) -> bool: ...
    @property
    def personless(self) -> bool | None: ...


@dataclass(slots=True)
class IncomingEvent:
    source_id: str
    message_id: str
    event_name: str
    distinct_id: str
    timestamp: datetime
    received_at: datetime
    category: str = "custom"
    properties: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    session_key: str = ""
    # Emitted by the platform (events_emit), not by a client: see Event.platform.
    platform: bool = False
    # Sent without a profile (see Event.personless). None until ingest applies the source's
    # setting: the wire formats set it only when the event carries its own flag.
    personless: bool | None = None
    # Serialized forms, made once during validation and reused by the insert.
    properties_json: str = "{}"
    context_json: str = "{}"

    def as_task_payload(self) -> dict[str, Any]:
        """A JSON-safe dict, for ephemeral sources whose events never reach the table."""
        return {
            "source_id": self.source_id,
            "message_id": self.message_id,
            "event_name": self.event_name,
            "distinct_id": self.distinct_id,
            "timestamp": self.timestamp.isoformat(),
            "received_at": self.received_at.isoformat(),
            "category": self.category,
            "properties": self.properties,
            "context": self.context,
            "session_key": self.session_key,
            "platform": self.platform,
            "personless": bool(self.personless),
        }

    @classmethod
    def from_task_payload(cls, data: dict[str, Any]) -> IncomingEvent:
        return cls(
            source_id=data["source_id"],
            message_id=data["message_id"],
            event_name=data["event_name"],
            distinct_id=data["distinct_id"],
            timestamp=datetime.fromisoformat(data["timestamp"]),
            received_at=datetime.fromisoformat(data["received_at"]),
            category=data["category"],
            properties=data["properties"],
            context=data["context"],
            session_key=data["session_key"],
            platform=bool(data.get("platform", False)),
            personless=bool(data.get("personless", False)),
        )


@dataclass(slots=True)
class Warning:
    index: int
    field: str
    warning: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "warning": self.warning}


# --- field validators ---------------------------------------------------------------------------


def _valid_text(value: str, field_name: str) -> str:
    if "\x00" in value:
        raise Rejection(field_name, "must not contain NUL characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Rejection(field_name, "is not valid unicode (lone surrogate)") from None
    return value


def clean_string(
    value: Any, field_name: str, *, max_length: int, required: bool, allow_number: bool = False
) -> str:
    """A non-blank string of at most max_length characters (numbers accepted as ids)."""
    if value is None:
        if required:
            raise Rejection(field_name, "is required")
        return ""
    if allow_number and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise Rejection(field_name, f"must be a string, not {json_type(value)}")
    value = value.strip()
    if not value:
        if required:
            raise Rejection(field_name, "must not be empty")
        return ""
    if len(value) > max_length:
        raise Rejection(field_name, f"is {len(value)} characters long; the limit is {max_length}")
    return _valid_text(value, field_name)


def clean_distinct_id(value: Any, field_name: str = "distinct_id") -> str:
    distinct_id = clean_string(
        value, field_name, max_length=MAX_DISTINCT_ID, required=True, allow_number=True
    )
    if distinct_id.lower() in PLACEHOLDER_IDS:
        raise Rejection(
            field_name,
            f"{distinct_id!r} is a placeholder, not an id: send the user's real id, or an "
            "anonymous id generated on the device",
        )
    return distinct_id


def parse_timestamp(value: Any, field_name: str) -> datetime | None:
    """ISO-8601 text (naive means UTC) or epoch seconds / milliseconds; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Rejection(field_name, "must be an ISO-8601 string or an epoch number")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise Rejection(field_name, "must be a finite number")
        seconds = value / 1000 if abs(value) >= _EPOCH_MS_THRESHOLD else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise Rejection(field_name, "is out of range") from None
    if not isinstance(value, str):
        raise Rejection(field_name, f"must be an ISO-8601 string, not {json_type(value)}")
    if len(value) > 64:
        raise Rejection(field_name, "is not an ISO-8601 timestamp")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Rejection(
            field_name, f"{value!r} is not an ISO-8601 timestamp (e.g. 2026-01-31T12:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise Rejection(field_name, "is out of range") from None


def event_time(
    timestamp: datetime | None,
    sent_at: datetime | None,
    received_at: datetime,
    max_future: timedelta,
) -> tuple[datetime, str | None]:
    """When the event happened, corrected for the client's clock: the offset between the
    client's sent_at and our receive time is added to its timestamp (as Segment does)."""
    if timestamp is None:
        return received_at, None
    if sent_at is not None:
        try:
            timestamp = timestamp + (received_at - sent_at)
        except OverflowError:
            return (
                received_at,
                "timestamp out of range after clock-skew correction; time received used",
            )
    if timestamp - received_at > max_future:
        return received_at, "timestamp is in the future; time received used"
    if timestamp.year < 2000:
        return received_at, "timestamp is before the year 2000; time received used"
    return timestamp, None


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | OutOfRange):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _strip_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_nul(v) for v in value]
    return value


def serialize_object(value: dict[str, Any], field_name: str) -> tuple[dict[str, Any], str, bool]:
    """Serialize a JSON object for storage. Returns (object, json text, NULs were stripped).

    Rejects what the database could not store: numbers out of range, lone surrogates, nesting
    deeper than orjson's limit (255)."""
    try:
        blob = orjson.dumps(value)
    except TypeError as exc:
        message = str(exc)
        if "OutOfRange" in message or "64-bit" in message:
            reason = "holds a number out of range"
        elif "surrogates" in message or "UTF-8" in message:
            reason = "holds text that is not valid unicode"
        elif "Recursion" in message:
            reason = "is nested too deeply"
        else:
            reason = f"cannot be stored: {message}"
        raise Rejection(field_name, reason) from None
    stripped = False
    if b"\\u0000" in blob:  # PostgreSQL can't store NUL in text or jsonb
        value = _strip_nul(value)
        blob = orjson.dumps(value)
        stripped = True
    return value, blob.decode(), stripped


def clean_object(value: Any, field_name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Rejection(field_name, f"must be an object, not {json_type(value)}")
    return value


def clean_profile_flag(value: Any, field_name: str) -> bool | None:
    """An event's own "with a profile" flag: True, False, or None when it sends none."""
    if value is None:
        return None
    if not isinstance(value, bool):
        raise Rejection(field_name, f"must be true or false, not {json_type(value)}")
    return value


def new_message_id() -> str:
    return uuid.uuid4().hex
