"""django-filter set for profiles: traits by value (?traits.plan=pro), identified, seen ranges,
group membership (?group=company:acme)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import django_filters
from django.db.models import Q, QuerySet
from rest_framework.exceptions import ValidationError

from apps.profiles.models import Profile, ProfileHistory
from cdp.api_filters import BoundedIsoDateTimeFilter, check_query_text

_TRAIT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def _trait_query(key: str, raw: str) -> Q:
    """Match the trait as the text sent, or as the JSON value it spells (10, true, null)."""
    lookup = f"traits__{key}"
    query = Q(**{lookup: raw})
    try:
        parsed = json.loads(raw)
    except ValueError:
        return query
    # A number JSON can't store (1e999 parses as infinity) matches as text only.
    if not isinstance(parsed, str) and not (
        isinstance(parsed, float) and not math.isfinite(parsed)
    ):
        query |= Q(**{lookup: parsed})
    return query


_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


class ProfileFilter(django_filters.FilterSet):
    # A typo ("identified=yes") is an error, not a silently ignored filter.
    identified = django_filters.TypedChoiceFilter(
        choices=[(value, value) for value in _BOOLEANS], coerce=_BOOLEANS.__getitem__
    )
    first_seen_after = BoundedIsoDateTimeFilter(field_name="first_seen", lookup_expr="gte")
    first_seen_before = BoundedIsoDateTimeFilter(field_name="first_seen", lookup_expr="lt")
    last_seen_after = BoundedIsoDateTimeFilter(field_name="last_seen", lookup_expr="gte")
    last_seen_before = BoundedIsoDateTimeFilter(field_name="last_seen", lookup_expr="lt")
    group = django_filters.CharFilter(method="filter_group", help_text="group_key:group_id")
    distinct_id = django_filters.CharFilter(field_name="identities__distinct_id")

    class Meta:
        model = Profile
        fields = ["identified"]

    def filter_group(self, queryset: QuerySet[Profile], name: str, value: str) -> Any:
        key, sep, group_id = value.partition(":")
        if not sep or not key or not group_id:
            raise ValidationError({"group": "use group_key:group_id, e.g. company:acme"})
        return queryset.filter(
            memberships__group__group_type__key=key, memberships__group__group_id=group_id
        )

    def filter_queryset(self, queryset: QuerySet[Profile]) -> Any:
        queryset = super().filter_queryset(queryset)
        for param, values in self.data.lists():
            if not param.startswith("traits."):
                continue
            key = param.removeprefix("traits.")
            # "__" would turn the rest of the name into an ORM lookup (traits.plan__regex=...).
            if not _TRAIT_NAME.match(key) or "__" in key:
                raise ValidationError(
                    {param: "a trait name has letters, digits, - and single _ between them"}
                )
            for raw in values:
                check_query_text(param, raw)
                queryset = queryset.filter(_trait_query(key, raw))
        return queryset


class HistoryFilter(django_filters.FilterSet):
    class Meta:
        model = ProfileHistory
        fields = ["action"]
