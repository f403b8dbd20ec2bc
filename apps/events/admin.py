"""Admin for events and sessions: read-only views for looking things up."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from apps.events.models import Event, Session


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["event_name", "distinct_id", "source", "category", "timestamp", "processed_at"]
    list_filter = ["source", "category", "timestamp"]
    search_fields = ["distinct_id", "event_name", "message_id"]
    date_hierarchy = "timestamp"
    list_select_related = ["source"]
    show_full_result_count = False  # counting a large events table is slow
    readonly_fields = ["workflow_runs"]

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
    list_filter = ["source", "device_type", "browser", "os"]
    search_fields = ["distinct_id", "key", "utm_campaign"]
    date_hierarchy = "started_at"
    list_select_related = ["source"]
    show_full_result_count = False
