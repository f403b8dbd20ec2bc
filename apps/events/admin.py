"""Admin for events and sessions: read-only views for looking things up."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from apps.events.models import Event, Session
from cdp.privacy import can_see_private, private_values, redact_json

# Shown in place of the raw payload to users without the private-traits permission.
REDACTED_FIELDS = {"properties": "properties_redacted", "context": "context_redacted"}


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["event_name", "distinct_id", "source", "category", "timestamp", "processed_at"]
    list_filter = ["source", "category", "platform", "personless", "timestamp"]
    search_fields = ["distinct_id", "event_name", "message_id"]
    date_hierarchy = "timestamp"
    list_select_related = ["source"]
    show_full_result_count = False  # counting a large events table is slow
    # Not form fields (set at ingest or emission only): shown read-only.
    readonly_fields = ["platform", "personless", "workflow_runs", *REDACTED_FIELDS.values()]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = [f for f in super().get_fields(request, obj) if f not in REDACTED_FIELDS.values()]
        if can_see_private(request.user):
            return fields
        # Identify and people calls carry PII ($set_private, private names in $set).
        return [REDACTED_FIELDS.get(f, f) if isinstance(f, str) else f for f in fields]

    @admin.display(description="Properties")
    def properties_redacted(self, event: Event) -> str:
        values = private_values(event.properties)
        return format_html("<pre>{}</pre>", _json(redact_json(event.properties, values)))

    @admin.display(description="Context")
    def context_redacted(self, event: Event) -> str:
        values = private_values(event.properties)
        return format_html("<pre>{}</pre>", _json(redact_json(event.context, values)))

    @admin.display(description="Workflow runs")
    def workflow_runs(self, event: Event) -> str:
        # A link, not a count: the filtered list counts through the runs' event index.
        return format_html(
            '<a href="{}?event={}">Runs of this event</a>',
            reverse("admin:workflows_workflowrun_changelist"),
            event.pk,
        )


@admin.register(Session)
class SessionAdmin(ReadOnlyAdmin):
    list_display = [
        "distinct_id",
        "source",
        "started_at",
        "event_count",
        "utm_campaign",
        "referring_domain",
        "browser",
        "os",
        "device_type",
    ]
    list_filter = ["source", "personless", "device_type", "browser", "os"]
    search_fields = ["distinct_id", "key", "utm_campaign"]
    date_hierarchy = "started_at"
    list_select_related = ["source"]
    show_full_result_count = False
