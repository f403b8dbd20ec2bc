"""django-filter sets for the events and sessions management API."""

import django_filters

from apps.events.models import Event, Session
from cdp.api_filters import BoundedIsoDateTimeFilter


class EventFilter(django_filters.FilterSet):
    distinct_id = django_filters.CharFilter()
    event_name = django_filters.CharFilter()
    source = django_filters.UUIDFilter(field_name="source_id")
    category = django_filters.CharFilter()
    session = django_filters.UUIDFilter(field_name="session_id")
    after = BoundedIsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    before = BoundedIsoDateTimeFilter(field_name="timestamp", lookup_expr="lt")
    processed = django_filters.BooleanFilter(
        field_name="processed_at", lookup_expr="isnull", exclude=True
    )
    platform = django_filters.BooleanFilter()
    personless = django_filters.BooleanFilter()

    class Meta:
        model = Event
        fields = ["distinct_id", "event_name", "source", "category", "session"]


class SessionFilter(django_filters.FilterSet):
    distinct_id = django_filters.CharFilter()
    source = django_filters.UUIDFilter(field_name="source_id")
    started_after = BoundedIsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = BoundedIsoDateTimeFilter(field_name="started_at", lookup_expr="lt")
    utm_campaign = django_filters.CharFilter()
    device_type = django_filters.CharFilter()
    personless = django_filters.BooleanFilter()

    class Meta:
        model = Session
        fields = ["distinct_id", "source", "utm_campaign", "device_type"]
