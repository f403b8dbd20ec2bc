"""Admin for consents: consent types, compliance rules (with a dry run on a sample event), the
history of decisions, and a consents section on the profile page."""

from __future__ import annotations

from typing import Any

import orjson
from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from apps.consents import gates, selectors
from apps.consents.compliance import PathError, path_compile
from apps.consents.models import ComplianceRule, ConsentChange, ConsentType, ProfileConsent
from apps.profiles.admin import ProfileAdmin

SAMPLE_EVENT = {
    "event_name": "order_completed",
    "properties": {"email": "jane@example.com", "items": [{"sku": "A-1", "price": 10}]},
    "context": {"traits": {"phone": "+1 555-0100"}},
}


@admin.register(ConsentType)
class ConsentTypeAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "default", "required", "revokable", "denied_by_gpc", "enabled"]
    list_filter = ["enabled", "required", "default", "denied_by_gpc"]
    search_fields = ["key", "name", "description"]


class ComplianceRuleForm(forms.ModelForm):
    class Meta:
        model = ComplianceRule
        fields = ["name", "event_name", "path", "action", "consent_types", "enabled"]

    def clean_path(self) -> str:
        try:
            return path_compile(self.cleaned_data["path"]).text
        except PathError as exc:
            raise forms.ValidationError(str(exc)) from None


class DryRunForm(forms.Form):
    sample = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14, "cols": 90}),
        help_text="An event as JSON: event_name, properties, context.",
    )

    def clean_sample(self) -> dict[str, Any]:
        try:
            data = orjson.loads(self.cleaned_data["sample"])
        except orjson.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise forms.ValidationError("An event is a JSON object")
        for key in ("properties", "context"):
            if not isinstance(data.get(key, {}), dict):
                raise forms.ValidationError(f"{key} is an object")
        return data


@admin.register(ComplianceRule)
class ComplianceRuleAdmin(admin.ModelAdmin):
    form = ComplianceRuleForm
    list_display = ["name", "event_name", "path", "action", "enabled"]
    list_filter = ["action", "enabled"]
    search_fields = ["name", "event_name", "path"]
    filter_horizontal = ["consent_types"]
    change_list_template = "admin/consents/compliancerule/change_list.html"

    def get_urls(self) -> list[Any]:
        return [
            path(
                "dry-run/",
                self.admin_site.admin_view(self.dry_run_view),
                name="consents_compliancerule_dry_run",
            ),
            *super().get_urls(),
        ]

    def dry_run_view(self, request: HttpRequest) -> HttpResponse:
        """What the enabled rules would make of a sample event, as if its person had granted
        nothing. Stores nothing."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        result = None
        if request.method == "POST":
            form = DryRunForm(request.POST)
            if form.is_valid():
                result = gates.compliance_dry_run(
                    rules=selectors.compliance_rules_enabled(), sample=form.cleaned_data["sample"]
                )
        else:
            form = DryRunForm(
                initial={"sample": orjson.dumps(SAMPLE_EVENT, option=orjson.OPT_INDENT_2).decode()}
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Dry run of the compliance rules",
            "form": form,
            "result": (
                orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() if result else None
            ),
        }
        return TemplateResponse(request, "admin/consents/compliancerule/dry_run.html", context)


@admin.register(ConsentChange)
class ConsentChangeAdmin(admin.ModelAdmin):
    """The history of decisions: read-only (it is the audit trail)."""

    list_display = ["at", "profile", "consent_type", "granted", "previous", "channel", "actor"]
    list_filter = ["consent_type", "channel", "granted"]
    search_fields = ["distinct_id", "profile__id"]
    list_select_related = ["consent_type", "profile"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ProfileConsentInline(admin.TabularInline):
    """The profile page's consents: decisions are recorded through the API or the tracker
    (so that each one leaves history and an event), never edited here."""

    model = ProfileConsent
    extra = 0
    fields = ["consent_type", "granted", "decided_at", "expires_at", "channel", "source"]
    readonly_fields = ["consent_type", "granted", "decided_at", "expires_at", "channel", "source"]
    can_delete = False
    verbose_name_plural = "Consents (no row: the type's default)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# The consents section of the profile page, registered from here (profiles can't import us).
if ProfileConsentInline not in ProfileAdmin.inlines:
    ProfileAdmin.inlines = [*ProfileAdmin.inlines, ProfileConsentInline]
