"""What every query kind shares: the validation error, field readers, date ranges and the
QueryRunner base class (validation, limits and caching; subclasses only compute)."""

from __future__ import annotations

import calendar
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Generic, Protocol, TypeVar
from zoneinfo import ZoneInfo, available_timezones

import orjson
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from apps.segments.filtering import Filter, FilterError, parse_filter, parse_text
from cdp.errors import DomainError

MAX_EVENT_NAME = 255
MAX_PROPERTY_KEY = 200
MAX_NAME = 200
MAX_RANGE_DAYS = 3660
CACHE_SECONDS = 60


class QueryError(DomainError):
    """A query that can't run: 400, code "invalid_query", `field` the dotted path at fault
    (`steps[1].filter`, `date_from`). Filter errors keep the filter's own message and leaf."""

    status_code = 400
    code = "invalid_query"
    position: int | None = None  # for text filters: the offending character

    def __init__(self, field: str, reason: str, *, code: str | None = None) -> None:
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason, field=field or None, code=code)


def _join(prefix: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{prefix}[{name}]"
    return f"{prefix}.{name}" if prefix else name


class Reader:
    """Reads one JSON object field by field; every error names the field's full path."""

    def __init__(self, data: Any, prefix: str = "", *, allowed: frozenset[str] | None = None):
        if not isinstance(data, Mapping):
            raise QueryError(prefix, "must be an object")
        self.data = data
        self.prefix = prefix
        if allowed is not None:
            unknown = sorted(str(key) for key in data if key not in allowed)
            if unknown:
                raise QueryError(_join(prefix, unknown[0]), "unknown field")

    def path(self, name: str | int) -> str:
        return _join(self.prefix, name)

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def raw(self, name: str) -> Any:
        return self.data.get(name)

    def string(
        self, name: str, *, default: str | None = None, max_length: int = MAX_NAME
    ) -> str | None:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, str) or not value.strip():
            raise QueryError(self.path(name), "must be a non-empty string")
        if len(value) > max_length or "\x00" in value:
            raise QueryError(self.path(name), f"must be at most {max_length} characters")
        return value

    def required_string(self, name: str, *, max_length: int = MAX_NAME) -> str:
        value = self.string(name, max_length=max_length)
        if value is None:
            raise QueryError(self.path(name), "is required")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.data.get(name, default)
        if value is None:
            return default
        if value not in choices:
            raise QueryError(self.path(name), f"must be one of {', '.join(choices)}")
        return str(value)

    def integer(self, name: str, *, default: int, low: int, high: int) -> int:
        value = self.data.get(name, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise QueryError(self.path(name), "must be an integer")
        if not low <= value <= high:
            raise QueryError(self.path(name), f"must be between {low} and {high}")
        return value

    def boolean(self, name: str, *, default: bool = False) -> bool:
        value = self.data.get(name, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise QueryError(self.path(name), "must be true or false")
        return value

    def items(self, name: str, *, low: int, high: int) -> list[tuple[str, Any]]:
        """A list field: (path of the item, item) pairs."""
        value = self.data.get(name)
        if value is None:
            value = []
        if not isinstance(value, list):
            raise QueryError(self.path(name), "must be a list")
        if not low <= len(value) <= high:
            raise QueryError(self.path(name), f"must have between {low} and {high} items")
        return [(_join(self.path(name), index), item) for index, item in enumerate(value)]


def read_event_name(reader: Reader, name: str = "event") -> str:
    """An event name; "*" means any event."""
    return reader.required_string(name, max_length=MAX_EVENT_NAME)


def read_filter(reader: Reader, name: str = "filter") -> Filter | None:
    """An event filter in the filter language: the JSON tree or its text form. Errors keep the
    filter's message and point at the field plus the leaf (`steps[0].filter.and[1]`)."""
    value = reader.raw(name)
    field = reader.path(name)
    if value is None or value == "" or value == {}:
        return None
    try:
        tree = parse_text(value, scope="event") if isinstance(value, str) else value
        return parse_filter(tree, scope="event")
    except FilterError as exc:
        error = QueryError(_join(field, exc.leaf) if exc.leaf else field, exc.message)
        error.code = exc.code
        error.position = exc.position
        raise error from exc


def read_property_key(reader: Reader, name: str = "property") -> str:
    key = reader.required_string(name, max_length=MAX_PROPERTY_KEY)
    if any(ord(char) < 32 for char in key) or '"' in key or "\\" in key:
        raise QueryError(reader.path(name), "can't contain quotes, backslashes or control chars")
    return key


# --- Date ranges ---------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^-(\d{1,4})([hdwmy])$")
PRESETS = ("today", "yesterday", "this_week", "this_month", "all")


@dataclass(frozen=True)
class DateRange:
    """[start, end) as aware datetimes, with the time zone calendar buckets use."""

    start: datetime
    end: datetime
    tz: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def as_dict(self) -> dict[str, Any]:
        return {"date_from": self.start.isoformat(), "date_to": self.end.isoformat(), "tz": self.tz}


def read_timezone(reader: Reader, name: str = "timezone") -> str:
    value = reader.string(name, default=None, max_length=64)
    tz = value or getattr(settings, "INSIGHTS_TIME_ZONE", settings.TIME_ZONE)
    if tz not in _zones():
        raise QueryError(reader.path(name), f"unknown time zone {tz!r} (an IANA name)")
    return tz


def _zones() -> set[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = set(available_timezones()) | {"UTC"}
    return _ZONES


_ZONES: set[str] | None = None


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def _months_back(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _parse_bound(value: Any, field: str, zone: ZoneInfo, now: datetime, *, end: bool) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise QueryError(field, "must be a date, a date-time, a preset or -N[h|d|w|m|y]")
    today = now.astimezone(zone).date()
    relative = _RELATIVE.match(value)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        if unit == "h":
            return (now - timedelta(hours=amount)).replace(minute=0, second=0, microsecond=0)
        if unit in "dw":
            days = amount * (7 if unit == "w" else 1)
            return _local_midnight(today - timedelta(days=days), zone)
        months = amount * (12 if unit == "y" else 1)
        return _local_midnight(_months_back(today, months), zone)
    if value in PRESETS:
        if value == "today":
            day = today + timedelta(days=1) if end else today
            return _local_midnight(day, zone)
        if value == "yesterday":
            return _local_midnight(today if end else today - timedelta(days=1), zone)
        if value == "this_week":
            return _local_midnight(today - timedelta(days=today.weekday()), zone)
        if value == "this_month":
            return _local_midnight(today.replace(day=1), zone)
        return datetime(2000, 1, 1, tzinfo=zone)
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return _local_midnight(day + timedelta(days=1) if end else day, zone)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(field, f"{value!r} is not a date (YYYY-MM-DD or ISO date-time)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def read_date_range(
    reader: Reader, *, default_from: str = "-7d", now: datetime | None = None
) -> DateRange:
    """date_from / date_to: ISO dates (whole days in the query's time zone; date_to inclusive),
    ISO date-times, presets (today, yesterday, this_week, this_month, all) or -N[h|d|w|m|y]
    (from the start of that day, hour or month). date_to defaults to now."""
    tz = read_timezone(reader)
    zone = ZoneInfo(tz)
    now = now or timezone.now()
    start = _parse_bound(
        reader.raw("date_from") or default_from, reader.path("date_from"), zone, now, end=False
    )
    raw_to = reader.raw("date_to")
    end = (
        now if raw_to is None else _parse_bound(raw_to, reader.path("date_to"), zone, now, end=True)
    )
    if end <= start:
        raise QueryError(reader.path("date_to"), "must be after date_from")
    if end - start > timedelta(days=MAX_RANGE_DAYS):
        raise QueryError(reader.path("date_from"), f"a range spans at most {MAX_RANGE_DAYS} days")
    return DateRange(start=start, end=end, tz=tz)


# --- Runners --------------------------------------------------------------------------------------


class _Query(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


Q = TypeVar("Q", bound=_Query)
R = TypeVar("R")


class QueryRunner(Generic[Q, R]):
    """One per insight kind. The base owns validation (`query_class.from_dict`), the result
    cache (keyed by the normalized query and the resolved dates, CACHE_SECONDS) and the bounds;
    a subclass sets `kind` and `query_class` and implements `calculate`."""

    kind: ClassVar[str]
    query_class: ClassVar[Callable[..., Any]]

    def __init__(self, query: Q, *, using: str = "default") -> None:
        self.query = query
        self.using = using

    @classmethod
    def from_dict(cls, data: Any) -> QueryRunner[Q, R]:
        return cls(cls.query_class(data))

    def cache_key(self) -> str:
        digest = hashlib.sha256(
            orjson.dumps(self.query.as_dict(), option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
        return f"insights:{self.kind}:{self.using}:{digest}"

    def run(self, *, use_cache: bool = True) -> R:
        key = self.cache_key()
        if use_cache:
            cached = cache.get(key)
            if cached is not None:
                return cached
        result = self.calculate()
        if use_cache:
            cache.set(key, result, CACHE_SECONDS)
        return result

    def calculate(self) -> R:
        raise NotImplementedError
