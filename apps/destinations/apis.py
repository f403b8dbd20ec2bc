"""Management API for resources and destinations: CRUD, connection tests, signing-secret
rotation, test sends, pause/resume, the delivery log with filters, and replays of dead
deliveries. Credentials are write-only: answers show them masked."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.destinations import selectors, services
from apps.destinations.connections import credentials_masked
from apps.destinations.models import (
    Delivery,
    DeliveryStatus,
    Destination,
    MappingMode,
    Resource,
    ResourceKind,
    Trigger,
)
from apps.destinations.types import destination_types
from cdp.audit import AuditMixin
from cdp.errors import DomainError
from cdp.permissions import require_perm, requires

MARK_INTERNAL = "destinations.mark_resource_internal"
MAX_REPLAY_IDS = 10_000


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": True,
        "description": "Public parts (a host, a port, a user name) as they are; URLs as their "
        "scheme, host and port; every secret as ********.",
    }
)
class MaskedCredentialsField(serializers.Field):
    """Credentials as shown: public parts as they are, secrets masked (never sent back)."""

    def __init__(self, attribute: str, **kwargs: Any) -> None:
        self.attribute = attribute
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, resource: Resource) -> dict[str, Any]:
        return credentials_masked(resource.kind, getattr(resource, self.attribute))


class ResourceSerializer(serializers.ModelSerializer):
    credentials = MaskedCredentialsField("credentials")
    test_credentials = MaskedCredentialsField("test_credentials")

    class Meta:
        model = Resource
        fields = [
            "id",
            "name",
            "kind",
            "description",
            "internal",
            "credentials",
            "test_credentials",
            "created_at",
            "updated_at",
        ]


class ResourceCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=ResourceKind.choices)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    credentials = serializers.JSONField(help_text="Production credentials (write-only).")
    test_credentials = serializers.JSONField(
        required=False, help_text="Credentials of test mode and test sends (write-only)."
    )
    internal = serializers.BooleanField(
        required=False, help_text="Needs destinations.mark_resource_internal."
    )


class ResourceUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    credentials = serializers.JSONField(
        required=False, help_text="Merged: a masked value keeps the stored secret."
    )
    test_credentials = serializers.JSONField(required=False)
    internal = serializers.BooleanField(required=False)


class RotateSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(
        max_length=200, help_text="The new whsec_ secret (made by the caller: never sent back)."
    )
    test = serializers.BooleanField(required=False, default=False)


def _json_object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DomainError(f"{field}: must be an object", field=field)
    return value


class ResourceViewSet(AuditMixin, viewsets.ModelViewSet):
    """Resources: typed connections (webhook, SMTP, Redis, PostgreSQL, Kafka)."""

    permission_model = Resource
    serializer_class = ResourceSerializer
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]
    audit_skip_actions = frozenset({"test"})

    def get_queryset(self) -> QuerySet[Resource]:
        return selectors.resource_list()

    @extend_schema(request=ResourceCreateSerializer, responses={201: ResourceSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = ResourceCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if values.get("internal"):
            require_perm(request.user, MARK_INTERNAL, "Marking a resource internal")
        resource = services.resource_create(
            name=values["name"],
            kind=values["kind"],
            description=values.get("description", ""),
            credentials=_json_object(values["credentials"], "credentials"),
            test_credentials=_json_object(values.get("test_credentials") or {}, "test_credentials"),
            internal=bool(values.get("internal")),
        )
        return Response(ResourceSerializer(resource).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ResourceUpdateSerializer, responses=ResourceSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        resource = self.get_object()
        data = ResourceUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if "internal" in values and values["internal"] != resource.internal:
            require_perm(request.user, MARK_INTERNAL, "Changing whether a resource is internal")
        for field in ("credentials", "test_credentials"):
            if field in values:
                _json_object(values[field], field)
        resource = services.resource_update(resource=resource, **values)
        return Response(ResourceSerializer(resource).data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.partial_update(request, *args, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.resource_delete(resource=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: dict})
    @requires("destinations.view_resource", "destinations.test_resource")
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Connect with the production (and test) credentials and say what answered."""
        return Response(services.resource_test(resource=self.get_object()))

    @extend_schema(request=RotateSecretSerializer, responses=ResourceSerializer)
    @requires("destinations.change_resource")
    @action(detail=True, methods=["post"], url_path="rotate-signing-secret")
    def rotate_signing_secret(self, request: Request, pk: str | None = None) -> Response:
        """Sign webhooks with a new secret; the previous ones sign too for 24 hours."""
        data = RotateSecretSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        resource = self.get_object()
        services.resource_rotate_signing_secret(
            resource=resource,
            secret=data.validated_data["secret"],
            test=data.validated_data["test"],
        )
        resource.refresh_from_db()
        return Response(ResourceSerializer(resource).data)


class DestinationSerializer(serializers.ModelSerializer):
    resource = serializers.PrimaryKeyRelatedField(queryset=Resource.objects.all())

    class Meta:
        model = Destination
        fields = [
            "id",
            "name",
            "kind",
            "resource",
            "trigger",
            "trigger_config",
            "mapping_mode",
            "mapping",
            "settings",
            "required_consents",
            "enabled",
            "disabled_reason",
            "consecutive_failures",
            "circuit_open_until",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "disabled_reason",
            "consecutive_failures",
            "circuit_open_until",
            "created_at",
            "updated_at",
        ]


class DestinationWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    kind = serializers.CharField(max_length=50)
    resource = serializers.PrimaryKeyRelatedField(queryset=Resource.objects.all())
    trigger = serializers.ChoiceField(choices=Trigger.choices)
    trigger_config = serializers.JSONField(required=False)
    mapping_mode = serializers.ChoiceField(choices=MappingMode.choices, required=False)
    mapping = serializers.JSONField(required=False)
    settings = serializers.JSONField(required=False)
    required_consents = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=50
    )
    enabled = serializers.BooleanField(required=False)


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = [
            "id",
            "key",
            "trigger",
            "profile_id",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "latency_ms",
            "created_at",
            "delivered_at",
            "payload",
        ]


class DeliveryPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = DeliverySerializer(many=True)


class DestinationTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField(source="label")
    resource_kinds = serializers.ListField(child=serializers.CharField())
    supports_profile_deleted = serializers.BooleanField()
    settings_schema = serializers.JSONField()


class ReplaySerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=MAX_REPLAY_IDS
    )
    all = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("ids") and not attrs.get("all"):
            raise serializers.ValidationError({"ids": 'Send ids, or "all": true'})
        if attrs.get("ids") and attrs.get("all"):
            raise serializers.ValidationError({"all": 'Send ids or "all": true, not both'})
        return attrs


class SendTestSerializer(serializers.Serializer):
    payload = serializers.JSONField(
        required=False, help_text="What to send (a sample when absent)."
    )


class DestinationViewSet(AuditMixin, viewsets.ModelViewSet):
    """Destinations: a resource, a trigger, a mapping, on/off; their deliveries."""

    permission_model = Destination
    serializer_class = DestinationSerializer
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]
    audit_skip_actions = frozenset({"test"})

    def get_queryset(self) -> QuerySet[Destination]:
        return selectors.destination_list()

    @extend_schema(request=DestinationWriteSerializer, responses={201: DestinationSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = DestinationWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        destination = services.destination_create(**data.validated_data)
        return Response(DestinationSerializer(destination).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=DestinationWriteSerializer, responses=DestinationSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        destination = self.get_object()
        data = DestinationWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        destination = services.destination_update(destination=destination, **data.validated_data)
        return Response(DestinationSerializer(destination).data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.partial_update(request, *args, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.destination_delete(destination=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=DestinationTypeSerializer(many=True))
    @requires("destinations.view_destination")
    @action(detail=False, methods=["get"], pagination_class=None)
    def types(self, request: Request) -> Response:
        """The destination types of the registry (built-in and installed)."""
        described = [cls.describe() for _, cls in sorted(destination_types().items())]
        return Response(DestinationTypeSerializer(described, many=True).data)

    @extend_schema(request=SendTestSerializer, responses={200: dict})
    @requires("destinations.view_destination", "destinations.test_destination")
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Send one test message now, with the resource's test credentials."""
        data = SendTestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.destination_send_test(
            destination=self.get_object(), payload=data.validated_data.get("payload")
        )
        return Response(result)

    @extend_schema(request=None, responses=DestinationSerializer)
    @requires("destinations.change_destination")
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        destination = services.destination_pause(destination=self.get_object())
        return Response(DestinationSerializer(destination).data)

    @extend_schema(request=None, responses=DestinationSerializer)
    @requires("destinations.change_destination")
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        destination = services.destination_resume(destination=self.get_object())
        return Response(DestinationSerializer(destination).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=DeliveryStatus.values),
            OpenApiParameter("trigger", str),
            OpenApiParameter("profile_id", str),
            OpenApiParameter("since", str, description="ISO time: created at or after"),
            OpenApiParameter("until", str, description="ISO time: created before"),
        ],
        responses=DeliveryPageSerializer,
    )
    @requires("destinations.view_destination", "destinations.view_delivery")
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        """The destination's deliveries, newest first, with filters."""
        query = selectors.destination_deliveries(self.get_object())
        params = request.query_params
        if params.get("status"):
            if params["status"] not in DeliveryStatus.values:
                raise DomainError(
                    f"status: one of {', '.join(DeliveryStatus.values)}", field="status"
                )
            query = query.filter(status=params["status"])
        if params.get("trigger"):
            query = query.filter(trigger=params["trigger"][:30])
        if params.get("profile_id"):
            query = query.filter(profile_id=_uuid(params["profile_id"], "profile_id"))
        for name, lookup in (("since", "created_at__gte"), ("until", "created_at__lt")):
            if params.get(name):
                query = query.filter(**{lookup: _time(params[name], name)})
        page = self.paginate_queryset(query.order_by("-id"))
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)

    @extend_schema(request=ReplaySerializer, responses={200: dict})
    @requires("destinations.replay_delivery")
    @action(detail=True, methods=["post"], url_path="deliveries/replay")
    def replay(self, request: Request, pk: str | None = None) -> Response:
        """Send dead deliveries again (the ids given, or all of them)."""
        data = ReplaySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ids = None if data.validated_data.get("all") else data.validated_data["ids"]
        result = services.deliveries_replay(destination=self.get_object(), ids=ids)
        return Response(result.as_dict())


def _uuid(value: str, field: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise DomainError(f"{field}: not a profile id", field=field) from None


def _time(value: str, field: str) -> Any:
    from django.utils.dateparse import parse_datetime

    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise DomainError(f"{field}: an ISO time with a time zone", field=field)
    return parsed
