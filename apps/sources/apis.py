"""Management API for event sources (sources are configured in the admin): read them, rotate
a write key, and choose whether their events create profiles (PATCH `with_profiles`). The key
is in full only for users who may change sources."""

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.sources import services
from apps.sources.bridges import bridge_choices
from apps.sources.models import EventSource
from apps.sources.visibility import MASK_EXAMPLE, write_key_for
from cdp.audit import AuditMixin
from cdp.pagination import NewestFirstCursorPagination
from cdp.permissions import requires


@extend_schema_field(
    {
        "type": "string",
        "example": MASK_EXAMPLE,
        "description": "In full for users with sources.change_eventsource; masked otherwise.",
    }
)
class WriteKeyField(serializers.Field):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, source: EventSource) -> str:
        request = self.context.get("request")
        return write_key_for(getattr(request, "user", None), source.write_key)


class EventSourceSerializer(serializers.ModelSerializer):
    write_key = WriteKeyField()
    has_bridge_secret = serializers.SerializerMethodField(
        help_text="Whether a webhook signature secret is set (the secret is never sent back)."
    )

    def get_has_bridge_secret(self, source: EventSource) -> bool:
        return bool(source.bridge_secret)

    class Meta:
        model = EventSource
        fields = [
            "id",
            "name",
            "description",
            "bridge",
            "bridge_config",
            "has_bridge_secret",
            "write_key",
            "enabled",
            "ephemeral",
            "with_profiles",
            "requires_consent",
            "session_timeout_minutes",
            "allowed_origins",
            "rate_limit_per_second",
            "created_at",
            "updated_at",
        ]


class EventSourceSettingsSerializer(serializers.Serializer[EventSource]):
    with_profiles = serializers.BooleanField(
        help_text="Events create and update profiles; false: personless events (stored, "
        "sessionized and routed, but no profile, identity, traits or counters)."
    )


class BridgeSerializer(serializers.Serializer):
    bridge = serializers.ChoiceField(choices=bridge_choices())
    config = serializers.JSONField(required=False, default=dict)
    secret = serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        max_length=500,
        trim_whitespace=False,
        help_text="Webhook: the HMAC secret. Absent: kept; empty: removed. Never sent back.",
    )


class CreatedCursorPagination(NewestFirstCursorPagination):
    ordering = ("-created_at",)


class EventSourceViewSet(AuditMixin, viewsets.ReadOnlyModelViewSet):
    permission_model = EventSource
    serializer_class = EventSourceSerializer
    pagination_class = CreatedCursorPagination
    filterset_fields = ["enabled", "ephemeral", "with_profiles", "bridge"]
    queryset = EventSource.objects.all()
    http_method_names = ["get", "post", "put", "patch", "head", "options"]

    @extend_schema(request=EventSourceSettingsSerializer, responses=EventSourceSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        """Change the source's settings: `with_profiles`."""
        settings = EventSourceSettingsSerializer(data=request.data)
        settings.is_valid(raise_exception=True)
        source = services.source_set_with_profiles(
            source=self.get_object(), with_profiles=settings.validated_data["with_profiles"]
        )
        return Response(self.get_serializer(source).data)

    @extend_schema(request=None, responses=EventSourceSerializer)
    @requires("sources.rotate_write_key")
    @action(detail=True, methods=["post"], url_path="rotate-write-key")
    def rotate_write_key(self, request: Request, pk: str | None = None) -> Response:
        """Give the source a new write key: the old one stops working (within
        CDP_SOURCE_CACHE_SECONDS in every web process)."""
        source = services.source_rotate_write_key(source=self.get_object())
        return Response(self.get_serializer(source).data)

    @extend_schema(request=BridgeSerializer, responses=EventSourceSerializer)
    @requires("sources.change_eventsource")
    @action(detail=True, methods=["put"], url_path="bridge")
    def bridge(self, request: Request, pk: str | None = None) -> Response:
        """Set the source's bridge and its settings (the webhook mapping and signature
        secret, the Redis stream's mapping); see docs/bridges.md."""
        data = BridgeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        source = services.source_set_bridge(
            source=self.get_object(),
            bridge=data.validated_data["bridge"],
            config=data.validated_data.get("config") or {},
            secret=data.validated_data.get("secret"),
        )
        return Response(self.get_serializer(source).data)
