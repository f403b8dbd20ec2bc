"""Management API for predictive scores: CRUD, "train now" and the history of model versions."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.segments.scoring import selectors, services
from apps.segments.scoring.models import (
    SCORE_NAME_PATTERN,
    ModelKind,
    ScoreDefinition,
    ScoreModelVersion,
)
from cdp.audit import AuditMixin
from cdp.permissions import requires


def _trait_keys() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=100),
        max_length=services.MAX_TRAITS,
        required=False,
    )


class ScoreVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ScoreModelVersion
        fields = [
            "number",
            "status",
            "reason",
            "model_kind",
            "cutoff",
            "feature_spec",
            "metrics",
            "created_at",
            "finished_at",
            "scored_at",
            "scored_profiles",
        ]


class ScoreVersionSummarySerializer(serializers.ModelSerializer):
    auc = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = ScoreModelVersion
        fields = ["number", "status", "auc", "finished_at", "scored_at", "scored_profiles"]


class ScoreSerializer(serializers.ModelSerializer):
    active_version = ScoreVersionSummarySerializer(read_only=True, allow_null=True)
    path = serializers.SerializerMethodField(help_text="How filters read it: scores.<name>")

    class Meta:
        model = ScoreDefinition
        fields = [
            "name",
            "path",
            "description",
            "target_event",
            "horizon_days",
            "model_kind",
            "numeric_traits",
            "categorical_traits",
            "max_events",
            "min_auc",
            "score_every_hours",
            "retrain_every_days",
            "enabled",
            "active_version",
            "last_scored_at",
            "created_at",
            "updated_at",
        ]

    def get_path(self, definition: ScoreDefinition) -> str:
        return f"scores.{definition.name}"


class ScoreUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    target_event = serializers.CharField(required=False, max_length=255)
    horizon_days = serializers.IntegerField(required=False, min_value=1, max_value=365)
    model_kind = serializers.ChoiceField(choices=ModelKind.choices, required=False)
    numeric_traits = _trait_keys()
    categorical_traits = _trait_keys()
    max_events = serializers.IntegerField(required=False, min_value=1, max_value=100)
    min_auc = serializers.FloatField(required=False, min_value=0.5, max_value=0.99)
    score_every_hours = serializers.IntegerField(required=False, min_value=1, max_value=720)
    retrain_every_days = serializers.IntegerField(required=False, min_value=0, max_value=365)
    enabled = serializers.BooleanField(required=False)


class ScoreCreateSerializer(ScoreUpdateSerializer):
    name = serializers.RegexField(
        rf"^{SCORE_NAME_PATTERN}\Z",
        max_length=63,
        help_text="Lowercase letters, digits and _, starting with a letter: purchase_14d",
        error_messages={"invalid": "lowercase letters, digits and _, starting with a letter"},
    )
    target_event = serializers.CharField(max_length=255)


class ScoreViewSet(AuditMixin, viewsets.GenericViewSet):
    """Predictive scores: each writes `scores.<name>` (0..1) per profile from its active model."""

    permission_model = ScoreDefinition
    lookup_field = "name"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    serializer_class = ScoreSerializer

    def get_queryset(self):
        return selectors.score_list()

    def get_object(self) -> ScoreDefinition:
        return selectors.score_get(self.kwargs["name"])

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ScoreSerializer(page, many=True).data)

    @extend_schema(request=ScoreCreateSerializer, responses={201: ScoreSerializer})
    def create(self, request: Request) -> Response:
        body = ScoreCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        definition = services.score_definition_create(**body.validated_data)
        return Response(ScoreSerializer(definition).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, name: str | None = None) -> Response:
        return Response(ScoreSerializer(self.get_object()).data)

    @extend_schema(request=ScoreUpdateSerializer, responses=ScoreSerializer)
    def partial_update(self, request: Request, name: str | None = None) -> Response:
        definition = self.get_object()
        body = ScoreUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        definition = services.score_definition_update(definition=definition, **body.validated_data)
        return Response(ScoreSerializer(definition).data)

    def destroy(self, request: Request, name: str | None = None) -> Response:
        services.score_definition_delete(definition=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: ScoreVersionSerializer})
    @requires("segments.view_scoredefinition", "segments.train_scoredefinition")
    @action(detail=True, methods=["post"])
    def train(self, request: Request, name: str | None = None) -> Response:
        """Train a new model version now (a background task). Bad input (too few profiles, a
        target nobody performs) is refused here, before anything is recorded."""
        version = services.score_train_request(definition=self.get_object())
        version.refresh_from_db()
        return Response(ScoreVersionSerializer(version).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: ScoreVersionSerializer(many=True)})
    @requires("segments.view_scoredefinition", "segments.view_scoremodelversion")
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, name: str | None = None) -> Any:
        """The model versions, newest first, with their holdout metrics and status."""
        page = self.paginate_queryset(selectors.score_version_list(self.get_object()))
        return self.get_paginated_response(ScoreVersionSerializer(page, many=True).data)
