"""Management API for event sources (read-only; sources are configured in the admin)."""

from rest_framework import serializers, viewsets

from apps.sources.models import EventSource
from cdp.pagination import NewestFirstCursorPagination


class EventSourceSerializer(serializers.ModelSerializer):
    class Meta:
        model = EventSource
        fields = [
            "id",
            "name",
            "description",
            "bridge",
            "write_key",
            "enabled",
            "ephemeral",
            "requires_consent",
            "session_timeout_minutes",
            "allowed_origins",
            "rate_limit_per_second",
            "created_at",
            "updated_at",
        ]


class CreatedCursorPagination(NewestFirstCursorPagination):
    ordering = ("-created_at",)


class EventSourceViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = EventSourceSerializer
    pagination_class = CreatedCursorPagination
    filterset_fields = ["enabled", "ephemeral", "bridge"]
    queryset = EventSource.objects.all()
