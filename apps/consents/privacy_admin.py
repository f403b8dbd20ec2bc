"""Admin for privacy requests: make one (validated like the API), follow its status and
counts, run a failed one again, download an export (its own permission)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html

from apps.consents.models import PrivacyRequest, PrivacyRequestStatus
from apps.consents.privacy import selectors, services
from cdp.audit import audit_log
from cdp.errors import DomainError
from cdp.permissions import user_has_perms

DOWNLOAD_PERMISSION = "consents.download_privacy_export"


class PrivacyRequestAddForm(forms.ModelForm):
    """Validated and stored by the service (the same checks as the API); nothing is stored
    when it refuses."""

    class Meta:
        model = PrivacyRequest
        fields = ["kind", "distinct_id", "reference"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["distinct_id"].required = True
        self.fields["distinct_id"].help_text = "Any id of the person."
        self.user: Any = None
        self.created: PrivacyRequest | None = None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            self.created = services.privacy_request_create(
                kind=data.get("kind"),
                distinct_id=data.get("distinct_id"),
                reference=data.get("reference", ""),
                user=self.user,
            )
        except DomainError as exc:
            field = exc.field if exc.field in self.fields else None
            self.add_error(field, exc.message)
        return data


@admin.register(PrivacyRequest)
class PrivacyRequestAdmin(admin.ModelAdmin):
    list_display = ["__str__", "kind", "status", "progress_shown", "reference", "created_at"]
    list_filter = ["kind", "status"]
    search_fields = ["reference"]
    actions = ["run_again"]
    readonly_fields = [
        "kind",
        "status",
        "distinct_id",
        "reference",
        "requested_by",
        "progress_shown",
        "totals",
        "counts",
        "error",
        "export_link",
        "created_at",
        "started_at",
        "finished_at",
    ]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        if obj is None:
            kwargs["form"] = PrivacyRequestAddForm
            kwargs["fields"] = ["kind", "distinct_id", "reference"]
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            user = request.user

            class Bound(form):  # type: ignore[misc, valid-type]
                def __init__(self, *args: Any, **kw: Any) -> None:
                    super().__init__(*args, **kw)
                    self.user = user

            return Bound
        return form

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["kind", "distinct_id", "reference"]
        return self.readonly_fields

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Any:
        if not change and getattr(form, "created", None) is not None:
            return form.created
        return super().save_form(request, form, change)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:  # every field is read-only once made
            return
        # Stored by the service in the form's clean().

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        return None  # no related objects: the service stored everything

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Viewing a request uses the change page read-only; nothing on it can be edited.
        return False

    @admin.display(description="progress")
    def progress_shown(self, obj: PrivacyRequest) -> str:
        return "-" if obj.progress is None else f"{obj.progress:.0%}"

    @admin.display(description="export")
    def export_link(self, obj: PrivacyRequest) -> str:
        info = selectors.privacy_export_info(obj)
        if info is None:
            return "-"
        url = reverse("admin:consents_privacyrequest_download", args=[obj.pk])
        return format_html(
            '<a href="{}">Download ({} bytes, expires {})</a>',
            url,
            info["size"],
            info["expires_at"],
        )

    @admin.action(description="Run the selected failed requests again", permissions=["add"])
    def run_again(self, request: HttpRequest, queryset: QuerySet[PrivacyRequest]) -> None:
        retried = sum(
            services.privacy_request_retry(request=r)
            for r in queryset.filter(status=PrivacyRequestStatus.FAILED)
        )
        self.message_user(request, f"{retried} request(s) queued again.", messages.SUCCESS)

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<uuid:pk>/download/",
                self.admin_site.admin_view(self.download_view),
                name="consents_privacyrequest_download",
            ),
            *super().get_urls(),
        ]

    def download_view(self, request: HttpRequest, pk: str) -> HttpResponse:
        if not user_has_perms(request.user, ["consents.view_privacyrequest", DOWNLOAD_PERMISSION]):
            raise PermissionDenied
        try:
            privacy_request = selectors.privacy_request_get(pk)
            content = selectors.privacy_export_content(privacy_request)
        except DomainError as exc:
            return HttpResponse(exc.message, status=exc.status_code, content_type="text/plain")
        audit_log(
            user=request.user,
            obj=privacy_request,
            action_flag=CHANGE,
            message="Export downloaded in the admin.",
        )
        response = HttpResponse(content, content_type="application/zip")
        response["Content-Disposition"] = (
            f'attachment; filename="privacy-export-{privacy_request.pk}.zip"'
        )
        return response
