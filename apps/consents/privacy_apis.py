"""Management API for privacy requests: list, create (queued), status with counts, and the
download of an export archive (its own permission)."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import CHANGE
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.consents.models import PrivacyRequest, PrivacyRequestKind
from apps.consents.privacy import selectors, services
from cdp.audit import AuditMixin, audit_log
from cdp.errors import DomainError
from cdp.pagination import NewestFirstCursorPagination
from cdp.permissions import requires

DOWNLOAD_PERMISSION = "consents.download_privacy_export"


class PrivacyRequestSerializer(serializers.ModelSerializer):
    requested_by = serializers.SerializerMethodField()
    progress = serializers.FloatField(read_only=True, allow_null=True)
    export = serializers.SerializerMethodField()

    class Meta:
        model = PrivacyRequest
        fields = [
            "id",
            "kind",
            "status",
            "distinct_id",
            "reference",
            "requested_by",
            "totals",
            "counts",
            "progress",
            "error",
            "export",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_requested_by(self, request: PrivacyRequest) -> str | None:
        return request.requested_by.get_username() if request.requested_by else None

    def get_export(self, request: PrivacyRequest) -> dict[str, Any] | None:
        export = selectors.privacy_export_info(request)
        if export is None:
            return None
        return {**export, "download": f"/api/v1/privacy-requests/{request.pk}/download"}


class PrivacyRequestCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=PrivacyRequestKind.choices)
    distinct_id = serializers.JSONField(help_text="Any id of the person (max 200 characters).")
    reference = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="A ticket number: no PII."
    )


class CreatedFirst(NewestFirstCursorPagination):
    ordering = ("-created_at",)


class PrivacyRequestViewSet(AuditMixin, viewsets.GenericViewSet):
    """Data subject requests: export, delete, suppress, suppress_and_delete, unsuppress. A
    request runs in the background: poll it for status, counts and progress."""

    permission_model = PrivacyRequest
    serializer_class = PrivacyRequestSerializer
    pagination_class = CreatedFirst

    def get_queryset(self):
        return selectors.privacy_request_list()

    def get_object(self) -> PrivacyRequest:
        return selectors.privacy_request_get(self.kwargs["pk"])

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(PrivacyRequestSerializer(page, many=True).data)

    @extend_schema(
        request=PrivacyRequestCreateSerializer, responses={202: PrivacyRequestSerializer}
    )
    def create(self, request: Request) -> Response:
        body = request.data if isinstance(request.data, dict) else None
        if body is None:
            raise DomainError("The body must be a JSON object", code="invalid_body")
        privacy_request = services.privacy_request_create(
            kind=body.get("kind"),
            distinct_id=body.get("distinct_id"),
            reference=body.get("reference", ""),
            user=request.user,
        )
        privacy_request.refresh_from_db()  # ran already when tasks run in-process
        return Response(
            PrivacyRequestSerializer(privacy_request).data, status=status.HTTP_202_ACCEPTED
        )

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(PrivacyRequestSerializer(self.get_object()).data)

    @extend_schema(
        responses={(200, "application/zip"): OpenApiResponse(description="The NDJSON zip")}
    )
    @requires("consents.view_privacyrequest", DOWNLOAD_PERMISSION)
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: str | None = None) -> HttpResponse:
        """The export archive (an NDJSON zip): one file per table and a manifest."""
        privacy_request = self.get_object()
        content = selectors.privacy_export_content(privacy_request)
        audit_log(
            user=request.user,
            obj=privacy_request,
            action_flag=CHANGE,
            message="Export downloaded through the API.",
        )
        response = HttpResponse(content, content_type="application/zip")
        response["Content-Disposition"] = (
            f'attachment; filename="privacy-export-{privacy_request.pk}.zip"'
        )
        return response
