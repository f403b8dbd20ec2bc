"""Management API for segments: CRUD, members (paginated, CSV export, static add/remove) and
a preview of a filter that saves nothing."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from apps.profiles.models import Profile
from apps.segments import selectors, services
from apps.segments.filtering import (
    FilterError,
    filter_redacted,
    filter_references_private,
    parse_text,
    to_text,
)
from apps.segments.models import Segment, SegmentKind, SegmentMembership
from cdp.audit import AuditMixin
from cdp.errors import DomainError
from cdp.permissions import require_perm, requires
from cdp.privacy import VIEW_PRIVATE_TRAITS, can_see_private

# Names the collection routes use: a segment key can't be one of them.
RESERVED_KEYS = frozenset({"preview"})
MAX_MEMBERS_PER_CALL = 10_000
MAX_FILTER_TEXT = 20_000


class CSVRenderer(BaseRenderer):
    """Lets `?format=csv` and `Accept: text/csv` through content negotiation; the members
    export streams its own response. What reaches this renderer is an error."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Any = None,
    ) -> str:
        error = data.get("error", {}) if isinstance(data, dict) else {}
        lines = _Echo()
        writer = csv.writer(lines)
        return writer.writerow(["error", "message"]) + writer.writerow(
            [error.get("code", ""), error.get("message", "")]
        )


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


def _csv_stream(rows: Iterator[list[str]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(row)


class SegmentSerializer(serializers.ModelSerializer):
    filter_text = serializers.SerializerMethodField()

    class Meta:
        model = Segment
        fields = [
            "key",
            "name",
            "description",
            "kind",
            "filter",
            "filter_text",
            "member_count",
            "last_computed_at",
            "created_at",
            "updated_at",
        ]

    def get_filter_text(self, segment: Segment) -> str | None:
        return to_text(segment.filter) if segment.filter else None

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        request = self.context.get("request")
        user = getattr(request, "user", None)
        if filter_references_private(data.get("filter")) and not can_see_private(user):
            data["filter"] = filter_redacted(data["filter"])
            data["filter_text"] = to_text(data["filter"])
        return data


class FilterInputMixin(serializers.Serializer):
    filter = serializers.JSONField(
        required=False, allow_null=True, help_text="The filter as a JSON tree (dynamic)."
    )
    filter_text = serializers.CharField(
        required=False,
        max_length=MAX_FILTER_TEXT,
        help_text='The filter in the text form: traits.plan is "pro" and event_count '
        "greater_than 5",
    )


class SegmentCreateSerializer(FilterInputMixin):
    key = serializers.SlugField(max_length=100)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    kind = serializers.ChoiceField(choices=SegmentKind.choices, default=SegmentKind.DYNAMIC)

    def validate_key(self, key: str) -> str:
        if key in RESERVED_KEYS:
            raise serializers.ValidationError(f"{key!r} is reserved")
        return key


class SegmentUpdateSerializer(FilterInputMixin):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=SegmentKind.choices, required=False)


class PreviewSerializer(FilterInputMixin):
    pass


class MembersChangeSerializer(serializers.Serializer):
    distinct_ids = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        max_length=MAX_MEMBERS_PER_CALL,
    )
    emails = serializers.ListField(
        child=serializers.CharField(max_length=254), required=False, max_length=MAX_MEMBERS_PER_CALL
    )
    profile_ids = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=MAX_MEMBERS_PER_CALL
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not any(attrs.get(name) for name in ("distinct_ids", "emails", "profile_ids")):
            raise serializers.ValidationError(
                {"distinct_ids": "Send distinct_ids, emails or profile_ids"}
            )
        return attrs


class MemberProfileSerializer(serializers.ModelSerializer):
    class Meta:
        model = Profile
        fields = ["id", "identified", "traits", "first_seen", "last_seen", "event_count"]


class MemberSerializer(serializers.ModelSerializer):
    profile = MemberProfileSerializer()

    class Meta:
        model = SegmentMembership
        fields = ["profile", "entered_at"]


def refuse_private_filter(request: Request, data: dict[str, Any]) -> None:
    """403 when the input filter reads private traits and the user may not see them."""
    tree = data.get("filter")
    if tree is None and data.get("filter_text"):
        try:
            tree = parse_text(data["filter_text"])
        except FilterError:
            return  # the service reports the syntax error
    if filter_references_private(tree):
        require_perm(request.user, VIEW_PRIVATE_TRAITS, "A filter on private traits")


class SegmentViewSet(AuditMixin, viewsets.GenericViewSet):
    """Segments (cohorts): dynamic ones follow a filter, static ones list their members."""

    permission_model = Segment
    audit_skip_actions = frozenset({"preview"})
    lookup_field = "key"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    serializer_class = SegmentSerializer

    def get_queryset(self):
        return selectors.segment_list()

    def get_object(self) -> Segment:
        return selectors.segment_get(self.kwargs["key"])

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        data = SegmentSerializer(page, many=True, context={"request": request}).data
        return self.get_paginated_response(data)

    @extend_schema(request=SegmentCreateSerializer, responses={201: SegmentSerializer})
    def create(self, request: Request) -> Response:
        body = SegmentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        refuse_private_filter(request, body.validated_data)
        segment = services.segment_create(**body.validated_data)
        return Response(
            SegmentSerializer(segment, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )

    def retrieve(self, request: Request, key: str | None = None) -> Response:
        return Response(SegmentSerializer(self.get_object(), context={"request": request}).data)

    @extend_schema(request=SegmentUpdateSerializer, responses=SegmentSerializer)
    def partial_update(self, request: Request, key: str | None = None) -> Response:
        segment = self.get_object()
        body = SegmentUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        refuse_private_filter(request, body.validated_data)
        segment = services.segment_update(segment=segment, **body.validated_data)
        return Response(SegmentSerializer(segment, context={"request": request}).data)

    def destroy(self, request: Request, key: str | None = None) -> Response:
        services.segment_delete(segment=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        methods=["GET"], responses={200: MemberSerializer(many=True), (200, "text/csv"): str}
    )
    @extend_schema(
        methods=["POST", "DELETE"],
        request=MembersChangeSerializer,
        responses=OpenApiResponse(description='{"changed": n, "unknown": [inputs]}'),
    )
    @requires(
        GET=("segments.view_segment", "profiles.view_profile"),
        POST="segments.change_segment",
        DELETE="segments.change_segment",
    )
    @action(
        detail=True,
        methods=["get", "post", "delete"],
        renderer_classes=[*api_settings.DEFAULT_RENDERER_CLASSES, CSVRenderer],
    )
    def members(self, request: Request, key: str | None = None) -> Any:
        """GET: the current members, newest first (`?format=csv` or `Accept: text/csv`: all
        of them as CSV, streamed). POST/DELETE: add/remove members of a static segment by
        distinct_ids, emails or profile_ids; inputs that name no profile come back in
        `unknown`."""
        segment = self.get_object()
        if request.method == "GET":
            if request.accepted_renderer.format == "csv":
                return self._members_csv(request, segment)
            page = self.paginate_queryset(selectors.segment_member_list(segment))
            return self.get_paginated_response(MemberSerializer(page, many=True).data)
        body = MembersChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        change = (
            services.segment_members_add
            if request.method == "POST"
            else services.segment_members_remove
        )
        result = change(segment=segment, **body.validated_data)
        return Response(result.as_dict())

    def _members_csv(self, request: Request, segment: Segment) -> StreamingHttpResponse:
        with_email = request.user.has_perm("profiles.view_private_traits")
        response = StreamingHttpResponse(
            _csv_stream(selectors.segment_members_csv_rows(segment, with_email=with_email)),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="{segment.key}-members.csv"'
        return response

    @requires("segments.view_segment", "profiles.view_profile")
    @action(detail=False, methods=["post"], serializer_class=PreviewSerializer)
    def preview(self, request: Request) -> Response:
        """A filter (JSON `filter` or `filter_text`) in; how many profiles match now and a
        sample of 10 out. Nothing is saved."""
        body = PreviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if data.get("filter") is None and "filter_text" not in data:
            raise DomainError("Send a filter (JSON) or filter_text", field="filter")
        refuse_private_filter(request, data)
        tree = services.segment_filter_parse(
            filter=data.get("filter"), filter_text=data.get("filter_text")
        )
        preview = selectors.segment_preview(tree)
        return Response(
            {
                "filter": tree,
                "count": preview.count,
                "sample": MemberProfileSerializer(preview.sample, many=True).data,
            }
        )
