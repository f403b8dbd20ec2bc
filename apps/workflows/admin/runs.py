"""Admin for runs and their node traces (read-only: runs are records)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from apps.workflows.admin.rendering import picture, pre
from apps.workflows.models import NodeTrace, WorkflowRun
from apps.workflows.privacy import run_private_values
from cdp.privacy import can_see_private, redacting, shown

TRACES_SHOWN = 300


TRACE_FIELDS = (
    "node_id",
    "action",
    "input_shown",
    "port",
    "output_shown",
    "duration_ms",
    "error",
    "attempt",
    "started_at",
)
RUN_FIELDS = (
    "path",
    "workflow",
    "version_shown",
    "rule",
    "event_link",
    "distinct_id",
    "profile_link",
    "status",
    "test",
    "depth",
    "created_at",
    "started_at",
    "finished_at",
    "duration_ms",
    "error",
    "variables_shown",
    "state_shown",
)


class NodeTraceInline(admin.TabularInline):
    """The run's node traces, in order (the first TRACES_SHOWN: a run may execute up to the
    engine's limit of nodes, and the API has them all)."""

    model = NodeTrace
    fields = TRACE_FIELDS
    readonly_fields = TRACE_FIELDS
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name_plural = f"Node traces (the first {TRACES_SHOWN})"

    @staticmethod
    def first_traces(run: WorkflowRun) -> QuerySet[NodeTrace]:
        traces = NodeTrace.objects.filter(run=run).order_by("started_at", "id")
        first = list(traces.values_list("id", flat=True)[:TRACES_SHOWN])
        return traces.filter(pk__in=first)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Input")
    def input_shown(self, trace: NodeTrace) -> str:
        return pre(shown(trace.input))

    @admin.display(description="Output")
    def output_shown(self, trace: NodeTrace) -> str:
        return pre(shown(trace.output))


@admin.register(WorkflowRun)
class WorkflowRunAdmin(admin.ModelAdmin):
    """Runs and their node traces (read-only: runs are records)."""

    list_display = [
        "__str__",
        "workflow",
        "status",
        "test",
        "version_shown",
        "rule",
        "event_link",
        "distinct_id",
        "created_at",
        "duration_ms",
    ]
    list_filter = ["workflow", "status", "test", "created_at"]
    list_select_related = ["workflow", "version", "rule"]
    search_fields = ["=distinct_id", "=event_ref"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    inlines = [NodeTraceInline]
    fields = RUN_FIELDS
    readonly_fields = RUN_FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """Without the private-traits permission, the run's traces, variables and state are
        shown redacted (the page is rendered here, inside the redaction)."""
        if can_see_private(request.user):
            return super().change_view(request, object_id, form_url, extra_context)
        run = WorkflowRun.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        with redacting(run_private_values(run) if run is not None else ()):
            response = super().change_view(request, object_id, form_url, extra_context)
            if hasattr(response, "render"):
                response.render()
        return response

    def get_formset_kwargs(
        self, request: HttpRequest, obj: Any, inline: Any, prefix: str
    ) -> dict[str, Any]:
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, NodeTraceInline) and obj is not None and obj.pk:
            kwargs["queryset"] = NodeTraceInline.first_traces(obj)
        return kwargs

    @admin.display(description="Version", ordering="version__number")
    def version_shown(self, run: WorkflowRun) -> str:
        return f"v{run.version.number}" if run.version else ("draft" if run.test else "-")

    @admin.display(description="Event", ordering="event_ref")
    def event_link(self, run: WorkflowRun) -> str:
        if run.event_ref is None:
            return "-"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:events_event_change", args=[run.event_ref]),
            run.event_ref,
        )

    @admin.display(description="Profile")
    def profile_link(self, run: WorkflowRun) -> str:
        if run.profile_id is None:
            return "-"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:profiles_profile_change", args=[run.profile_id]),
            run.profile_id,
        )

    @admin.display(description="Path")
    def path(self, run: WorkflowRun) -> str:
        """The run's version of the graph, with the nodes it ran and the ports they fired."""
        if run.version is None:
            return "-"
        trace = [{"node": t.node_id, "port": t.port, "error": t.error} for t in run.traces.all()]
        return picture(run.version.graph, trace=trace)

    @admin.display(description="Variables")
    def variables_shown(self, run: WorkflowRun) -> str:
        return pre(shown(run.variables or None))

    @admin.display(description="State (while waiting)")
    def state_shown(self, run: WorkflowRun) -> str:
        return pre(shown(run.state or None))
