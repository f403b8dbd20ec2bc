"""Query-string filters for the management API that bound their values at parse time, so that a
value the database would refuse (an offset of +23:59, a year past 9999 once in UTC, a NUL
character) is a 400 naming the parameter, never a 500."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import django_filters
from django.core.exceptions import ValidationError

# Real time zones are between UTC-12:00 and UTC+14:00.
MAX_UTC_OFFSET = timedelta(hours=14)
EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


class BoundedIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValidationError("a date can't hold NUL characters", code="invalid")
        parsed = super().to_python(value)
        if parsed is None:
            return None
        offset = parsed.utcoffset()
        if offset is not None and abs(offset) > MAX_UTC_OFFSET:
            raise ValidationError(
                "the UTC offset must be between -14:00 and +14:00", code="invalid"
            )
        try:
            instant = parsed.astimezone(UTC) if offset is not None else parsed
        except OverflowError:
            raise ValidationError("the date is out of range", code="invalid") from None
        if instant.tzinfo is not None and not EARLIEST <= instant < LATEST:
            raise ValidationError("the date must be between the years 1000 and 9998")
        return parsed


class BoundedIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date-time with a real UTC offset, in years 1000..9998."""

    field_class = BoundedIsoDateTimeField


def check_query_text(name: str, value: str, *, max_length: int = 1000) -> None:
    """A free-form query value: bounded in length, without NUL (which PostgreSQL refuses)."""
    from rest_framework.exceptions import ValidationError as ApiValidationError

    if "\x00" in value:
        raise ApiValidationError({name: "the value can't hold NUL characters"})
    if len(value) > max_length:
        raise ApiValidationError({name: f"the value has at most {max_length} characters"})
