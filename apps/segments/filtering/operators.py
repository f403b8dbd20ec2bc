"""The operator table, value validation, and the value rules both evaluators share."""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from apps.segments.filtering.paths import FieldType

MAX_STRING_LENGTH = 1000
MAX_LIST_ITEMS = 500
MAX_DURATION = timedelta(days=36_600)
DURATION_UNITS = {"minutes": 60, "hours": 3600, "days": 86_400, "weeks": 604_800}


@dataclass(frozen=True)
class Operator:
    name: str
    # What the operator reads: "string", "number", "boolean", "date", "list", "presence", "item".
    family: str
    # The value it takes: "none", "string", "number", "date", "range", "duration", "list", "item".
    value: str
    # A negated operator is exactly NOT its positive counterpart (so it is true on missing).
    negates: str | None = None


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in [
        Operator("is_set", "presence", "none"),
        Operator("is_not_set", "presence", "none", negates="is_set"),
        Operator("is", "string", "string"),
        Operator("is_not", "string", "string", negates="is"),
        Operator("contains", "string", "string"),
        Operator("not_contains", "string", "string", negates="contains"),
        Operator("starts_with", "string", "string"),
        Operator("ends_with", "string", "string"),
        Operator("equals", "number", "number"),
        Operator("not_equals", "number", "number", negates="equals"),
        Operator("greater_than", "number", "number"),
        Operator("greater_than_or_equal", "number", "number"),
        Operator("less_than", "number", "number"),
        Operator("less_than_or_equal", "number", "number"),
        # `between` reads numbers or dates, by the type of its two bounds.
        Operator("between", "number", "range"),
        Operator("is_true", "boolean", "none"),
        Operator("is_false", "boolean", "none"),
        Operator("before", "date", "date"),
        Operator("after", "date", "date"),
        Operator("in_the_last", "date", "duration"),
        Operator("not_in_the_last", "date", "duration", negates="in_the_last"),
        Operator("any_in_list", "list", "list"),
        Operator("all_in_list", "list", "list"),
        Operator("none_in_list", "list", "list", negates="any_in_list"),
        Operator("any_item", "item", "item"),
    ]
}

# Which operators a typed column accepts; JSON paths accept them all.
_PRESENCE = {"is_set", "is_not_set"}
FIELD_OPERATORS: dict[FieldType, set[str]] = {
    "string": _PRESENCE
    | {"is", "is_not", "contains", "not_contains", "starts_with", "ends_with"}
    | {"any_in_list", "none_in_list"},
    "number": _PRESENCE
    | {"equals", "not_equals", "greater_than", "greater_than_or_equal", "less_than"}
    | {"less_than_or_equal", "between"},
    "boolean": _PRESENCE | {"is_true", "is_false"},
    "date": _PRESENCE | {"before", "after", "between", "in_the_last", "not_in_the_last"},
    "uuid": _PRESENCE | {"is", "is_not"},
    "json": set(OPERATORS),
}
# Operators an any_item leaf applies to each item.
ITEM_OPERATORS = {name for name, op in OPERATORS.items() if op.family not in ("list", "item")}


class ValueError_(ValueError):
    """A value that doesn't fit its operator; the parser names the leaf."""


# --- strings -----------------------------------------------------------------------------------

_ASCII_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def ascii_fold(text: str) -> str:
    """Case folding for contains/starts_with/ends_with: A-Z only, in both evaluators (SQLite's
    LIKE and our PostgreSQL translate() fold ASCII only, so non-ASCII letters compare exactly)."""
    return text.translate(_ASCII_FOLD)


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _check_string(value: Any, *, allow_empty: bool) -> str:
    if not isinstance(value, str):
        raise ValueError_(f"expects a string value, got {_kind(value)}")
    if not value and not allow_empty:
        raise ValueError_("expects a non-empty string")
    if len(value) > MAX_STRING_LENGTH:
        raise ValueError_(f"a string value has at most {MAX_STRING_LENGTH} characters")
    if "\x00" in value:
        raise ValueError_("a string value can't hold NUL characters")
    return value


# --- numbers -----------------------------------------------------------------------------------


def is_number(value: Any) -> bool:
    """A JSON number: int or float, never a bool (JSON true is not 1)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def to_decimal(value: int | float) -> Decimal:
    """Numbers compare as decimals, as PostgreSQL's numeric does with jsonb numbers."""
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def _check_number(value: Any) -> int | float:
    if not is_number(value):
        raise ValueError_(f"expects a number, got {_kind(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError_("expects a finite number")
    if abs(value) > 1e300:
        raise ValueError_("number out of range")
    return value


def number_constraints(operator: str, value: Any) -> list[tuple[str, Decimal]]:
    """The comparisons a number operator makes against the stored number."""
    if operator == "between":
        return [(">=", to_decimal(value[0])), ("<=", to_decimal(value[1]))]
    cmp = {
        "equals": "=",
        "greater_than": ">",
        "greater_than_or_equal": ">=",
        "less_than": "<",
        "less_than_or_equal": "<=",
    }[operator]
    return [(cmp, to_decimal(value))]


# --- dates -------------------------------------------------------------------------------------

# The one date grammar (stored values and filter values): ISO 8601 date or date-time, `T` or a
# space between, optional seconds and 1-6 fraction digits, `Z` or `+HH:MM`; naive means UTC.
DATE_PATTERN = (
    r"([1-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"(?:[T ]([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9])(?:\.([0-9]{1,6}))?)?"
    r"(Z|[+-](?:0[0-9]|1[0-4]):[0-5][0-9])?)?"
)
_DATE_RE = re.compile(DATE_PATTERN)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _parse_date(text: str) -> tuple[datetime, bool] | None:
    match = _DATE_RE.fullmatch(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if zone in (None, "Z"):
        tz = UTC
    else:
        sign = -1 if zone[0] == "-" else 1
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        tz = UTC if not offset else timezone(sign * offset)
    try:
        parsed = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "").ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError:  # 2024-02-30
        return None
    return parsed, hour is None


def parse_stored_date(value: Any) -> datetime | None:
    """A stored value as an instant: a datetime column's value, or a JSON string in the date
    grammar. Anything else (numbers, other strings, 2024-02-30) is not a date."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    parsed = _parse_date(value)
    return parsed[0] if parsed else None


def micros(instant: datetime) -> int:
    """Microseconds since the epoch: how SQLite compares dates (no overflow near year 9999)."""
    return (instant - EPOCH) // timedelta(microseconds=1)


def sqlite_timestamp(value: Any) -> int | None:
    """The SQLite function behind date operators: ISO text -> epoch microseconds, else NULL."""
    parsed = parse_stored_date(value)
    return None if parsed is None else micros(parsed)


@dataclass(frozen=True)
class DateBound:
    """A filter date: an instant, or a whole UTC day [start, end) for a date without time."""

    start: datetime
    end: datetime
    whole_day: bool


def date_bound(value: Any) -> DateBound:
    if not isinstance(value, str):
        raise ValueError_(f"expects an ISO date such as 2025-01-31, got {_kind(value)}")
    parsed = _parse_date(value)
    if parsed is None:
        raise ValueError_(
            f"malformed date {value[:40]!r}: use 2025-01-31, 2025-01-31T12:00:00 or "
            "2025-01-31T12:00:00+02:00"
        )
    instant, whole_day = parsed
    try:
        start = instant.astimezone(UTC)
        end = start + timedelta(days=1) if whole_day else start
    except OverflowError:
        raise ValueError_(f"date out of range: {value!r}") from None
    return DateBound(start, end, whole_day)


def duration(value: Any) -> timedelta:
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError_('expects one unit and an amount, such as {"days": 7}')
    ((unit, amount),) = value.items()
    if unit not in DURATION_UNITS:
        raise ValueError_(f"unknown unit {unit!r}: use {', '.join(DURATION_UNITS)}")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
        raise ValueError_("the amount is a positive whole number")
    # Compared in seconds first: a huge amount would overflow timedelta itself.
    if DURATION_UNITS[unit] * amount > MAX_DURATION.total_seconds():
        raise ValueError_("a duration is at most 100 years")
    return timedelta(seconds=DURATION_UNITS[unit] * amount)


def date_constraints(operator: str, value: Any, now: datetime) -> list[tuple[str, datetime]]:
    """The comparisons a date operator makes against the stored instant."""
    if operator == "in_the_last":
        return [(">=", now - duration(value))]
    if operator == "before":
        return [("<", date_bound(value).start)]
    if operator == "after":
        bound = date_bound(value)
        return [(">=", bound.end)] if bound.whole_day else [(">", bound.start)]
    low, high = date_bound(value[0]), date_bound(value[1])
    return [(">=", low.start), ("<", high.end) if high.whole_day else ("<=", high.start)]


# --- lists -------------------------------------------------------------------------------------


def json_equal(stored: Any, wanted: Any) -> bool:
    """Equality of JSON scalars by type: "1" != 1, true != 1, 1 == 1.0."""
    if isinstance(wanted, bool) or isinstance(stored, bool):
        return isinstance(wanted, bool) and isinstance(stored, bool) and stored is wanted
    if is_number(wanted):
        return is_number(stored) and to_decimal(stored) == to_decimal(wanted)
    return isinstance(stored, str) and stored == wanted


def _check_list(value: Any, *, strings_only: bool) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ValueError_("expects a non-empty list of values")
    if len(value) > MAX_LIST_ITEMS:
        raise ValueError_(f"a list has at most {MAX_LIST_ITEMS} values")
    for item in value:
        if isinstance(item, str):
            _check_string(item, allow_empty=True)
        elif strings_only:
            raise ValueError_(f"this field is text: list values must be strings, not {_kind(item)}")
        elif isinstance(item, bool):
            continue
        elif is_number(item):
            _check_number(item)
        else:
            raise ValueError_(f"list values are strings, numbers or booleans, not {_kind(item)}")
    return list(value)


# --- validation --------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def check_value(operator: Operator, value: Any, field_type: FieldType) -> Any:
    """Validate and normalize the value an operator takes on a field of this type."""
    kind = operator.value
    if kind == "none":
        if value is not None:
            raise ValueError_(f"{operator.name} takes no value")
        return None
    if kind == "string":
        if field_type == "uuid":
            return _check_uuid(value)
        return _check_string(value, allow_empty=operator.name in ("is", "is_not"))
    if kind == "number":
        return _check_number(value)
    if kind == "date":
        date_bound(value)
        return value
    if kind == "duration":
        duration(value)
        return dict(value)
    if kind == "list":
        return _check_list(value, strings_only=field_type == "string")
    if kind == "range":
        return _check_range(value, field_type)
    raise ValueError_(f"{operator.name} takes an item condition, not a value")


def _check_range(value: Any, field_type: FieldType) -> list[Any]:
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError_("between expects two bounds: [low, high]")
    low, high = value
    if field_type != "date" and is_number(low) and is_number(high):
        _check_number(low)
        _check_number(high)
        if to_decimal(low) > to_decimal(high):
            raise ValueError_("between expects the low bound first")
        return [low, high]
    if field_type in ("date", "json") and isinstance(low, str) and isinstance(high, str):
        if date_bound(low).start > date_bound(high).end:
            raise ValueError_("between expects the earlier date first")
        return [low, high]
    expected = {"date": "two ISO dates", "number": "two numbers"}.get(
        field_type, "two numbers or two ISO dates"
    )
    raise ValueError_(f"between expects {expected}")


def between_is_date(value: list[Any]) -> bool:
    return isinstance(value[0], str)


def _check_uuid(value: Any) -> str:
    import uuid

    if not isinstance(value, str):
        raise ValueError_(f"expects a source id, got {_kind(value)}")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError_(f"{value[:40]!r} is not a source id (a UUID)") from None


def true_on_missing(operator: str) -> bool:
    """What an operator answers on a missing value (or JSON null): only the negated ones."""
    return OPERATORS[operator].negates is not None
