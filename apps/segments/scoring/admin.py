"""Admin for predictive scores: definitions (with "train now", the model versions, their
holdout metrics and a chart of the ROC curve and the calibration) and the read-only versions."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from apps.segments.scoring import selectors, services
from apps.segments.scoring.models import ScoreDefinition, ScoreModelVersion, VersionStatus
from cdp.errors import DomainError

TRAIN_PERMISSION = "segments.train_scoredefinition"
VERSIONS_SHOWN = 20


def _auc(version: ScoreModelVersion | None) -> str:
    if version is None or version.auc is None:
        return "-"
    return f"{version.auc:.3f} (base rate {version.metrics.get('base_rate', 0):.1%})"


def chart_data(version: ScoreModelVersion | None) -> dict[str, Any] | None:
    """What the admin's chart draws: the ROC curve and the calibration table."""
    if version is None or not version.metrics.get("roc"):
        return None
    return {
        "title": f"v{version.number}: ROC AUC {version.metrics['auc']:.3f}",
        "roc": version.metrics["roc"],
        "calibration": version.metrics.get("calibration", []),
        "base_rate": version.metrics.get("base_rate"),
    }


class ScoreDefinitionForm(forms.ModelForm):
    class Meta:
        model = ScoreDefinition
        fields = list(services.EDITABLE)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("numeric_traits", "categorical_traits"):
            try:
                data[name] = services._check_traits(data.get(name) or [], name)
            except DomainError as exc:
                self.add_error(name, exc.message)
        return data


@admin.register(ScoreDefinition)
class ScoreDefinitionAdmin(admin.ModelAdmin):
    form = ScoreDefinitionForm
    list_display = [
        "name",
        "target_event",
        "horizon_days",
        "model_kind",
        "active_auc",
        "last_scored_at",
        "enabled",
    ]
    list_filter = ["enabled", "model_kind"]
    search_fields = ["name", "target_event"]
    readonly_fields = ["filter_path", "active_auc", "last_scored_at", "created_at", "updated_at"]
    change_form_template = "admin/segments/scoredefinition/change_form.html"
    fieldsets = [
        (None, {"fields": ["name", "filter_path", "description", "enabled"]}),
        (
            "What to predict",
            {
                "fields": ["target_event", "horizon_days"],
                "description": "The chance that a profile performs the target event within "
                "the horizon. Training reads the features as of horizon days ago and learns "
                "from what happened since.",
            },
        ),
        (
            "Features and model",
            {
                "fields": [
                    "model_kind",
                    "max_events",
                    "numeric_traits",
                    "categorical_traits",
                    "min_auc",
                ],
                "description": "Counts of the most frequent events in the last 7/30/90 days, "
                "days since the last event and sessions are always used; traits are listed "
                'as JSON lists of keys, e.g. ["plan"].',
            },
        ),
        ("Schedule", {"fields": ["score_every_hours", "retrain_every_days", "last_scored_at"]}),
        (None, {"fields": ["active_auc", "created_at", "updated_at"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> Any:
        return selectors.score_list()

    @admin.display(description="Filter path")
    def filter_path(self, obj: ScoreDefinition) -> str:
        return f"scores.{obj.name}" if obj.pk else "-"

    @admin.display(description="Active model: holdout ROC AUC")
    def active_auc(self, obj: ScoreDefinition) -> str:
        return _auc(obj.active_version)

    def save_model(
        self, request: HttpRequest, obj: ScoreDefinition, form: Any, change: bool
    ) -> None:
        fields = {name: form.cleaned_data[name] for name in services.EDITABLE}
        if change:
            services.score_definition_update(
                definition=ScoreDefinition.objects.get(pk=obj.pk), **fields
            )
        else:
            obj.pk = services.score_definition_create(**fields).pk

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> Any:
        definition = ScoreDefinition.objects.filter(pk=object_id).first()
        if definition is not None:
            reading = services._segments_reading(definition.name)
            if reading:
                self.message_user(
                    request,
                    f"Score {definition.name!r} can't be deleted: segment {reading[0].key!r} "
                    "reads it (change that segment's filter first)",
                    messages.ERROR,
                )
                return HttpResponseRedirect(
                    reverse("admin:segments_scoredefinition_change", args=[definition.pk])
                )
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request: HttpRequest, obj: ScoreDefinition) -> None:
        services.score_definition_delete(definition=obj)

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:object_id>/train/",
                self.admin_site.admin_view(self.train_view),
                name="segments_scoredefinition_train",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        definition = ScoreDefinition.objects.filter(pk=object_id).first()
        context = dict(extra_context or {})
        if definition is not None:
            versions = list(selectors.score_version_list(definition)[:VERSIONS_SHOWN])
            shown = definition.active_version or next(
                (v for v in versions if v.metrics.get("roc")), None
            )
            context.update(
                versions=versions,
                chart=chart_data(shown),
                can_train=request.user.has_perm(TRAIN_PERMISSION),
            )
        return super().change_view(request, object_id, form_url, extra_context=context)

    def train_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """POST: queue a training now (bad input is said at once, nothing recorded)."""
        if not request.user.has_perm(TRAIN_PERMISSION):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        definition = get_object_or_404(ScoreDefinition, pk=object_id)
        try:
            version = services.score_train_request(definition=definition)
        except DomainError as exc:
            self.message_user(request, f"Not trained: {exc.message}", messages.ERROR)
        else:
            version.refresh_from_db()
            if version.status == VersionStatus.TRAINING:
                text = f"Version {version.number} is training: reload to see its metrics."
            else:
                text = f"Version {version.number}: {version.get_status_display()}."
                if version.reason:
                    text += f" {version.reason}"
            self.message_user(request, text, messages.SUCCESS)
        return HttpResponseRedirect(
            reverse("admin:segments_scoredefinition_change", args=[definition.pk])
        )


@admin.register(ScoreModelVersion)
class ScoreModelVersionAdmin(admin.ModelAdmin):
    """The history of trained models: read only (training makes them)."""

    list_display = ["__str__", "status", "holdout_auc", "model_kind", "cutoff", "finished_at"]
    list_filter = ["status", "model_kind", "definition"]
    list_select_related = ["definition"]
    change_form_template = "admin/segments/scoremodelversion/change_form.html"
    exclude = ["model", "model_signature"]
    readonly_fields = [
        "definition",
        "number",
        "status",
        "reason",
        "model_kind",
        "cutoff",
        "holdout_auc",
        "metrics_table",
        "feature_spec",
        "created_at",
        "finished_at",
        "scored_at",
        "scored_profiles",
    ]
    fields = tuple(readonly_fields)

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).defer("model")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Holdout ROC AUC")
    def holdout_auc(self, obj: ScoreModelVersion) -> str:
        return _auc(obj)

    @admin.display(description="Holdout metrics")
    def metrics_table(self, obj: ScoreModelVersion) -> str:
        m = obj.metrics
        if not m.get("auc"):
            return "-"
        return format_html(
            "ROC AUC {} · Brier {} (base rate alone: {}) · top tenth lift {}x · "
            "{} held-out profiles ({} converters), {} to fit",
            m["auc"],
            m["brier"],
            m["brier_base_rate"],
            m.get("top_decile_lift", "-"),
            m["holdout_profiles"],
            m["holdout_converters"],
            m.get("training_profiles", "-"),
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        version = ScoreModelVersion.objects.defer("model").filter(pk=object_id).first()
        context = {**(extra_context or {}), "chart": chart_data(version)}
        return super().change_view(request, object_id, form_url, extra_context=context)
