"""Management API for events and sessions (token-authenticated, read-only)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers, viewsets

from apps.events import selectors
from apps.events.filters import EventFilter, SessionFilter
from apps.events.models import SESSION_ENTRY_FIELDS, Event, Session
from apps.events.privacy import redact_private
from cdp.pagination import NewestFirstCursorPagination


class SessionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Session
        fields = [
            "id",
            "source",
            "distinct_id",
            "key",
            "started_at",
            "last_event_at",
            "event_count",
            "personless",
            *SESSION_ENTRY_FIELDS,
        ]


class EventSessionSerializer(serializers.ModelSerializer):
    """The session context an event inherits."""

    class Meta:
        model = Session
        fields = [
            "id",
            "started_at",
            "referrer",
            "referring_domain",
            "landing_page",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "browser",
            "os",
            "device_type",
        ]


class EventSerializer(serializers.ModelSerializer):
    session = EventSessionSerializer(read_only=True)

    class Meta:
        model = Event
        fields = [
            "id",
            "source",
            "message_id",
            "event_name",
            "distinct_id",
            "category",
            "platform",
            "personless",
            "timestamp",
            "received_at",
            "properties",
            "context",
            "session_key",
            "session",
            "processed_at",
        ]

    def to_representation(self, instance: Any) -> dict[str, Any]:
        """Identify calls carry private traits (PII): hidden without the permission."""
        data = super().to_representation(instance)
        request = self.context.get("request")
        if not (request and request.user.has_perm("profiles.view_private_traits")):
            data["properties"] = redact_private(data.get("properties"))
        return data


class TimestampCursorPagination(NewestFirstCursorPagination):
    ordering = ("-timestamp", "-id")


class StartedAtCursorPagination(NewestFirstCursorPagination):
    ordering = ("-started_at",)


class EventViewSet(viewsets.ReadOnlyModelViewSet):
    """Stored events, newest first. Filter by distinct_id, event_name, source, category,
    session and a time range (after, before: ISO-8601)."""

    permission_model = Event
    serializer_class = EventSerializer
    filterset_class = EventFilter
    pagination_class = TimestampCursorPagination

    def get_queryset(self):
        return selectors.event_list()


class SessionViewSet(viewsets.ReadOnlyModelViewSet):
    """Sessions, most recently started first."""

    permission_model = Session
    serializer_class = SessionSerializer
    filterset_class = SessionFilter
    pagination_class = StartedAtCursorPagination

    def get_queryset(self):
        return selectors.session_list()
