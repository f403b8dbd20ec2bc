"""Management API for consents: consent types, compliance rules (with a dry run), and a
profile's consents with their history."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.consents import gates, selectors, services
from apps.consents.compliance import PathError, path_compile
from apps.consents.models import ComplianceRule, ConsentChange, ConsentType, ProfileConsent
from apps.profiles.models import Profile
from cdp.audit import AuditMixin
from cdp.errors import DomainError
from cdp.permissions import requires

MAX_TAGS = 20


class ConsentTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConsentType
        fields = [
            "id",
            "key",
            "name",
            "description",
            "revokable",
            "default",
            "required",
            "auto_revoke_after",
            "denied_by_gpc",
            "tags",
            "enabled",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_tags(self, value: Any) -> list[str]:
        if not isinstance(value, list) or len(value) > MAX_TAGS:
            raise serializers.ValidationError(f"a list of at most {MAX_TAGS} tags")
        if not all(isinstance(t, str) and 0 < len(t) <= 50 for t in value):
            raise serializers.ValidationError("each tag is a string of 1 to 50 characters")
        return value

    def validate_auto_revoke_after(self, value: Any) -> Any:
        if value is not None and value.total_seconds() <= 0:
            raise serializers.ValidationError("a positive duration, or empty for never")
        return value


class ConsentTypeViewSet(AuditMixin, viewsets.ModelViewSet):
    """Consent types: what a person may consent to. The key is how every channel names it."""

    queryset = ConsentType.objects.all()
    serializer_class = ConsentTypeSerializer
    lookup_field = "key"
    lookup_value_regex = "[a-z0-9][a-z0-9_-]{0,99}"


class ComplianceRuleSerializer(serializers.ModelSerializer):
    consent_types = serializers.SlugRelatedField(
        many=True, slug_field="key", queryset=ConsentType.objects.all(), required=False
    )

    class Meta:
        model = ComplianceRule
        fields = [
            "id",
            "name",
            "event_name",
            "path",
            "action",
            "consent_types",
            "enabled",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_path(self, value: str) -> str:
        try:
            return path_compile(value).text
        except PathError as exc:
            raise serializers.ValidationError(str(exc)) from None


class ComplianceRuleViewSet(AuditMixin, viewsets.ModelViewSet):
    """Data-compliance rules, applied at ingest before anything is stored."""

    queryset = ComplianceRule.objects.prefetch_related("consent_types")
    serializer_class = ComplianceRuleSerializer
    audit_skip_actions = frozenset({"dry_run"})

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses=OpenApiTypes.OBJECT,
        description="The sample event `{event_name, properties, context}` as the enabled rules "
        "would store it.",
    )
    @requires("consents.view_compliancerule")
    @action(detail=False, methods=["post"], url_path="dry-run")
    def dry_run(self, request: Request) -> Response:
        """What the enabled rules would do to a sample event (its person granting nothing);
        stores nothing."""
        sample = request.data
        if not isinstance(sample, dict):
            raise DomainError("The sample is an event: a JSON object")
        for key in ("properties", "context"):
            if not isinstance(sample.get(key) or {}, dict):
                raise DomainError(f"{key} is an object", field=key)
        name = sample.get("event_name") or "sample"
        if not isinstance(name, str) or len(name) > 255:
            raise DomainError(
                "event_name is a string of at most 255 characters", field="event_name"
            )
        rules = selectors.compliance_rules_enabled()
        return Response(gates.compliance_dry_run(rules=rules, sample=sample))


class ProfileConsentSerializer(serializers.ModelSerializer):
    key = serializers.CharField(source="consent_type.key")
    source_name = serializers.CharField(source="source.name", default="")

    class Meta:
        model = ConsentChange
        fields = [
            "key",
            "granted",
            "previous",
            "at",
            "expires_at",
            "channel",
            "source_name",
            "distinct_id",
            "actor",
        ]


class ProfileConsentsView(AuditMixin, viewsets.GenericViewSet):
    """GET: a profile's effective consents (every enabled type) and their history.
    POST {"consents": {key: true|false}}: a staff member records decisions."""

    queryset = Profile.objects.all()
    permission_model = ProfileConsent
    lookup_url_kwarg = "profile_id"
    serializer_class = ProfileConsentSerializer
    pagination_class = None

    @requires("profiles.view_profile", "consents.view_profileconsent")
    def list(self, request: Request, profile_id: str) -> Response:
        profile = self.get_object()
        history = selectors.profile_consent_history(profile)[:500]
        return Response(
            {
                "profile": str(profile.pk),
                "merged_into": str(profile.merged_into_id) if profile.merged_into_id else None,
                "consents": selectors.profile_consents(profile),
                "history": ProfileConsentSerializer(history, many=True).data,
            }
        )

    @requires("profiles.view_profile", "consents.change_profileconsent")
    def create(self, request: Request, profile_id: str) -> Response:
        profile = self.get_object()
        consents = request.data.get("consents") if isinstance(request.data, dict) else None
        if not isinstance(consents, dict) or not all(
            isinstance(v, bool) for v in consents.values()
        ):
            raise DomainError(
                "consents is an object of consent type -> true or false", field="consents"
            )
        result = services.consent_set_by_staff(
            profile=profile, decisions={str(k): v for k, v in consents.items()}, user=request.user
        )
        return Response(
            {
                "changed": result.changed,
                "unchanged": result.unchanged,
                "consents": selectors.profile_consents(profile),
            }
        )
