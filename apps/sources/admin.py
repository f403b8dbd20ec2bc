"""Admin for event sources: search, filters, key rotation, and a copy-paste example."""

from __future__ import annotations

import copy
import json

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from apps.sources import services
from apps.sources.bridges import WEBHOOK, signature_header
from apps.sources.models import EventSource
from apps.sources.snippet import tracker_snippet
from apps.sources.visibility import may_see_write_key, write_key_for


def curl_example(source: EventSource, base_url: str) -> str:
    event = {
        "event_name": "signed_up",
        "distinct_id": "user-123",
        "properties": {"plan": "pro"},
    }
    return (
        f"curl -X POST {base_url}/api/track \\\n"
        f"  -u '{source.write_key}:' \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d '{json.dumps(event)}'"
    )


class EventSourceForm(forms.ModelForm):
    """The bridge secret is write-only: never rendered back; blank keeps the stored one."""

    bridge_secret = forms.CharField(
        required=False,
        max_length=500,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=(
            "Webhook bridge: the HMAC-SHA256 secret that signs request bodies. Never shown; "
            "leave blank to keep the current one."
        ),
    )
    clear_bridge_secret = forms.BooleanField(
        required=False, label="Remove the bridge secret (signatures no longer checked)"
    )

    class Meta:
        model = EventSource
        fields = [
            "name",
            "description",
            "bridge",
            "enabled",
            "bridge_config",
            "bridge_secret",
            "ephemeral",
            "requires_consent",
            "session_timeout_minutes",
            "allowed_origins",
            "rate_limit_per_second",
        ]

    def clean_bridge_secret(self) -> str:
        entered = self.cleaned_data.get("bridge_secret") or ""
        if self.data.get("clear_bridge_secret"):
            return ""
        return entered or (self.instance.bridge_secret if self.instance.pk else "")


@admin.register(EventSource)
class EventSourceAdmin(admin.ModelAdmin):
    form = EventSourceForm
    list_display = [
        "name",
        "bridge",
        "enabled",
        "ephemeral",
        "with_profiles",
        "requires_consent",
        "session_timeout_minutes",
        "rate_limit_per_second",
        "created_at",
    ]
    list_filter = ["bridge", "enabled", "ephemeral", "with_profiles", "requires_consent"]
    search_fields = ["name", "description", "write_key", "id"]
    readonly_fields = [
        "id",
        "webhook_url",
        "write_key_and_example",
        "write_key_rotated_at",
        "created_at",
        "updated_at",
    ]
    actions = ["rotate_write_key", "enable", "disable"]
    fieldsets = [
        (None, {"fields": ["id", "name", "description", "bridge", "enabled"]}),
        (
            "Bridge settings",
            {
                "fields": ["bridge_config", "bridge_secret", "clear_bridge_secret"],
                "description": "Webhook and Redis-stream bridges: see docs/bridges.md.",
            },
        ),
        ("Write key", {"fields": ["write_key_and_example", "write_key_rotated_at"]}),
        (
            "Behaviour",
            {
                "fields": [
                    "ephemeral",
                    "with_profiles",
                    "requires_consent",
                    "session_timeout_minutes",
                    "allowed_origins",
                    "rate_limit_per_second",
                ]
            },
        ),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]

    def get_fieldsets(self, request: HttpRequest, obj: EventSource | None = None):
        if obj is None:  # the key and its example exist once the source is saved
            return [fs for fs in self.fieldsets if fs[0] not in ("Write key", "History")]
        fieldsets = copy.deepcopy(self.fieldsets)
        for name, options in fieldsets:
            if name != "Bridge settings":
                continue
            fields = list(options["fields"])
            if obj.bridge == WEBHOOK.key:  # where the third party posts, and how to sign
                fields.insert(0, "webhook_url")
            if not self.has_change_permission(request, obj):
                # A read-only page would render the stored secret as text: leave it out.
                fields = [f for f in fields if f not in ("bridge_secret", "clear_bridge_secret")]
            options["fields"] = fields
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: EventSource | None = None):
        return self.readonly_fields if obj else ["id"]

    def get_search_fields(self, request: HttpRequest):
        # Searching by key would tell a user who may not see keys whether a guess is right.
        if may_see_write_key(request.user):
            return self.search_fields
        return [f for f in self.search_fields if f != "write_key"]

    def has_rotate_write_key_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("sources.rotate_write_key")

    @admin.display(description="Webhook URL")
    def webhook_url(self, obj: EventSource) -> str:
        request = getattr(self, "_request", None)
        path = reverse("bridge-webhook", kwargs={"source_id": obj.pk})
        url = request.build_absolute_uri(path) if request else path
        header, prefix = signature_header(obj.bridge_config)
        hint = (
            "Signed requests only: send"
            if obj.bridge_secret
            else "Unsigned requests are accepted; with a bridge secret set, send"
        )
        return format_html(
            '<code style="font-size:1.1em">{}</code><p>{} <code>{}: {}&lt;hex '
            "HMAC-SHA256 of the raw body, keyed with the bridge secret&gt;</code> "
            "(see docs/bridges.md).</p>",
            url,
            hint,
            header,
            prefix,
        )

    @admin.display(description="Write key")
    def write_key_and_example(self, obj: EventSource) -> str:
        request = getattr(self, "_request", None)
        base_url = (
            request.build_absolute_uri("/").rstrip("/") if request else "http://localhost:8000"
        )
        shown = copy.copy(obj)
        shown.write_key = write_key_for(getattr(request, "user", None), obj.write_key)
        note = (
            ""
            if shown.write_key == obj.write_key
            else format_html("<p>{}</p>", "Masked: shown to users who may change the source.")
        )
        return format_html(
            '<code style="font-size:1.1em">{}</code>{}'
            '<p>Send a first event:</p><pre style="white-space:pre-wrap">{}</pre>'
            "<p>Track a website: paste this before <code>&lt;/head&gt;</code> on every page "
            "(see docs/tracker.md{}):</p>"
            '<pre style="white-space:pre-wrap">{}</pre>',
            shown.write_key,
            note,
            curl_example(shown, base_url),
            "; this source requires consent" if obj.requires_consent else "",
            tracker_snippet(shown, base_url),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self._request = request
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(
        description="Rotate the write key (the old key stops working)",
        permissions=["rotate_write_key"],
    )
    def rotate_write_key(self, request: HttpRequest, queryset: QuerySet[EventSource]) -> None:
        for source in queryset:
            services.source_rotate_write_key(source=source)
            self.log_change(request, source, "Rotated the write key.")
        self.message_user(
            request, f"Rotated the write key of {queryset.count()} source(s).", messages.SUCCESS
        )

    @admin.action(description="Enable", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[EventSource]) -> None:
        for source in queryset:
            services.source_set_enabled(source=source, enabled=True)

    @admin.action(description="Disable (their events are refused with 401)", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[EventSource]) -> None:
        for source in queryset:
            services.source_set_enabled(source=source, enabled=False)
