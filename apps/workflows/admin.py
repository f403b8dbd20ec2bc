"""Admin for routing rules, workflows (the graph as a picture, the JSON editor with inline
errors, publish, restore, export, import, test runs), runs with their node traces, and the
action registry."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, QuerySet
from django.forms.fields import InvalidJSONInput
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from apps.workflows import exchange, selectors, services, trial
from apps.workflows.actions import action_classes
from apps.workflows.graph import graph_errors
from apps.workflows.graph_svg import graph_svg
from apps.workflows.models import NodeTrace, Rule, Workflow, WorkflowRun, empty_graph
from apps.workflows.privacy import (
    graph_references_private,
    private_read_error,
    run_private_values,
    trial_result_redacted,
)
from cdp.errors import DomainError
from cdp.privacy import VIEW_PRIVATE_TRAITS, can_see_private, redacting, shown

MAX_IMPORT_BYTES = 2 * 1024 * 1024
BUILTIN_MODULE = "apps.workflows.actions"
MONOSPACE = "font-family:monospace"
TRACES_SHOWN = 300


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _pre(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return format_html('<pre style="white-space:pre-wrap;margin:0">{}</pre>', _pretty(value))


def error_text(error: dict[str, Any]) -> str:
    """One graph error as a line naming its node and field."""
    where = [f"node {error['node']!r}"] if error.get("node") else []
    if error.get("field"):
        where.append(f"field {error['field']}")
    return f"{', '.join(where) or 'graph'}: {error['message']}"


def picture(
    graph: Any,
    *,
    errors: list[dict[str, Any]] | None = None,
    trace: list[dict[str, Any]] | None = None,
) -> SafeString:
    """The graph as SVG (graph_svg escapes every text it draws): nodes named by `errors` in
    red, the path a run's `trace` ({node, port, error}) took in green."""
    ports = {name: cls.ports for name, cls in action_classes().items()}
    trace = trace or []
    failing = {
        str(e["node"])
        for e in [*(errors or []), *trace]
        if e.get("node") and (e.get("message") or e.get("error"))
    }
    svg = graph_svg(
        graph,
        action_ports=ports,
        errors=failing,
        ran={str(t["node"]) for t in trace},
        fired={(str(t["node"]), str(t["port"])) for t in trace if t.get("port")},
    )
    return mark_safe(f'<div class="workflow-picture" style="overflow:auto">{svg}</div>')  # noqa: S308


class JSONTextField(forms.JSONField):
    """A JSON textarea, pretty-printed, whose parse errors say where the JSON breaks."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "widget", forms.Textarea(attrs={"rows": 24, "cols": 100, "style": MONOSPACE})
        )
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        try:
            return super().to_python(value)
        except ValidationError:
            try:
                json.loads(value)
            except (TypeError, json.JSONDecodeError) as exc:
                detail = (
                    f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
                    if isinstance(exc, json.JSONDecodeError)
                    else str(exc)
                )
                raise ValidationError(f"Not valid JSON: {detail}", code="invalid") from None
            raise

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, InvalidJSONInput):
            return value
        if value is None:
            return ""
        return json.dumps(value, indent=2, ensure_ascii=False)


# --- rules --------------------------------------------------------------------------------------


class RuleAdminForm(forms.ModelForm):
    condition = JSONTextField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 90, "style": MONOSPACE}),
        help_text='A filter on the event and its profile, e.g. {"property": '
        '"event.properties.plan", "operator": "is", "value": "pro"}. Empty: every event.',
    )

    class Meta:
        model = Rule
        fields = ["name", "event_name", "source", "workflow", "condition", "enabled", "priority"]

    def clean_condition(self) -> Any:
        from apps.segments.filtering import FilterError, parse_filter

        condition = self.cleaned_data.get("condition")
        if condition in (None, {}, ""):
            return None
        try:
            tree = parse_filter(condition, scope="event").tree
        except FilterError as exc:
            where = f"{exc.leaf}: " if exc.leaf else ""
            raise ValidationError(f"{where}{exc.reason}") from None
        refused = private_read_error(getattr(self, "user", None), condition=tree)
        if refused:
            raise ValidationError(refused)
        return tree


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    form = RuleAdminForm
    list_display = [
        "name",
        "event",
        "source_shown",
        "workflow",
        "enabled",
        "priority",
        "condition_shown",
    ]
    list_filter = ["enabled", "workflow", "source"]
    list_select_related = ["workflow", "source"]
    search_fields = ["name", "event_name"]
    actions = ["enable", "disable"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.user = request.user  # type: ignore[attr-defined]  # a class made for this request
        return form

    @admin.display(description="Event", ordering="event_name")
    def event(self, rule: Rule) -> str:
        return rule.event_name or "any"

    @admin.display(description="Source", ordering="source__name")
    def source_shown(self, rule: Rule) -> str:
        return str(rule.source) if rule.source else "any"

    @admin.display(description="Condition")
    def condition_shown(self, rule: Rule) -> str:
        return json.dumps(rule.condition)[:120] if rule.condition else "-"

    def save_model(self, request: HttpRequest, obj: Rule, form: Any, change: bool) -> None:
        data = form.cleaned_data
        fields = {
            "name": data["name"],
            "workflow": data["workflow"],
            "event_name": data["event_name"],
            "source": data["source"],
            "condition": data["condition"],
            "enabled": data["enabled"],
            "priority": data["priority"],
        }
        if change:
            rule = services.rule_update(rule=Rule.objects.get(pk=obj.pk), **fields)
        else:
            rule = services.rule_create(**fields)
        obj.pk = rule.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Rule) -> None:
        services.rule_delete(rule=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Rule]) -> None:
        for rule in queryset:
            services.rule_delete(rule=rule)

    @admin.action(description="Enable the selected rules", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Rule]) -> None:
        for rule in queryset:
            services.rule_update(rule=rule, enabled=True)

    @admin.action(description="Disable the selected rules", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Rule]) -> None:
        for rule in queryset:
            services.rule_update(rule=rule, enabled=False)


# --- workflows ----------------------------------------------------------------------------------


class WorkflowAdminForm(forms.ModelForm):
    graph = JSONTextField(
        initial=empty_graph,
        help_text='The draft: {"nodes": [{"id", "action", "config"}], "edges": [{"from", '
        '"port", "to"}]}. Saving checks it; runs use the published version until you publish.',
    )

    class Meta:
        model = Workflow
        fields = ["name", "description", "graph"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What clean_graph found, for the picture to outline the nodes at fault.
        self.graph_errors: list[dict[str, Any]] = []

    def clean_graph(self) -> Any:
        """The graph, or every error in it (each naming its node and field) under the field."""
        graph = self.cleaned_data.get("graph")
        self.graph_errors = graph_errors(graph)
        if self.graph_errors:
            raise ValidationError([error_text(e) for e in self.graph_errors])
        refused = private_read_error(getattr(self, "user", None), graph=graph)
        if refused:
            raise ValidationError(refused)
        return graph


class ImportForm(forms.Form):
    file = forms.FileField(required=False, help_text="A file saved with Export JSON.")
    document = JSONTextField(
        required=False,
        label="Or paste the JSON",
        widget=forms.Textarea(attrs={"rows": 16, "cols": 100, "style": MONOSPACE}),
    )
    name = forms.CharField(
        max_length=200, required=False, help_text="Empty: the name in the export."
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("file")
        if upload is not None:
            if upload.size > MAX_IMPORT_BYTES:
                self.add_error("file", "The file is larger than 2 MB")
                return data
            try:
                data["document"] = json.loads(upload.read().decode("utf-8-sig"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                self.add_error("file", f"Not a JSON file: {exc}")
        elif data.get("document") in (None, "") and not self.errors:
            self.add_error("document", "Choose a file or paste the JSON")
        return data


class TestForm(forms.Form):
    event = JSONTextField(
        initial={"event_name": "signup", "properties": {"plan": "pro"}},
        widget=forms.Textarea(attrs={"rows": 10, "cols": 90, "style": MONOSPACE}),
        help_text="event_name, properties, and optionally distinct_id, context, timestamp.",
    )
    distinct_id = forms.CharField(
        max_length=200,
        required=False,
        help_text="Whose profile the test uses (a new person when unknown).",
    )
    traits = JSONTextField(
        required=False,
        label="Traits (test only)",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 90, "style": MONOSPACE}),
        help_text='Set on the profile for this test, e.g. {"plan": "pro"}.',
    )

    def clean_event(self) -> dict[str, Any]:
        event = self.cleaned_data.get("event")
        if not isinstance(event, dict):
            raise ValidationError("The event is a JSON object")
        return event

    def clean_traits(self) -> dict[str, Any] | None:
        traits = self.cleaned_data.get("traits")
        if traits in (None, ""):
            return None
        if not isinstance(traits, dict):
            raise ValidationError("Traits are a JSON object")
        return traits


def versions_html(workflow: Workflow) -> str:
    """The versions of a workflow, newest first, with a link to restore each."""
    versions = list(selectors.workflow_versions(workflow))
    if not versions:
        return "Never published."
    current = workflow.published_version_id
    rows = format_html_join(
        "",
        "<tr><td>v{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                v.number,
                v.published_at.strftime("%Y-%m-%d %H:%M:%S"),
                v.published_by.get_username() if v.published_by else "-",
                format_html("<strong>{}</strong>", "published")
                if v.pk == current
                else format_html(
                    '<a href="{}">Restore v{}</a>',
                    reverse("admin:workflows_workflow_restore", args=[workflow.pk, v.number]),
                    v.number,
                ),
            )
            for v in versions
        ),
    )
    return format_html(
        "<table><tr><th>Version</th><th>Published</th><th>By</th><th></th></tr>{}</table>", rows
    )


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    form = WorkflowAdminForm
    list_display = ["name", "published", "draft_state", "rule_count", "runs", "updated_at"]
    search_fields = ["name", "description"]
    readonly_fields = ["published", "versions", "runs"]
    actions = ["publish_selected"]
    change_form_template = "admin/workflows/workflow/change_form.html"
    change_list_template = "admin/workflows/workflow/change_list.html"

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.user = request.user  # type: ignore[attr-defined]  # a class made for this request
        return form

    def has_publish_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("workflows.publish_workflow")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workflow]:
        return (
            super()
            .get_queryset(request)
            .select_related("published_version")
            .annotate(rule_total=Count("rules"))
        )

    def get_fieldsets(self, request: HttpRequest, obj: Workflow | None = None) -> Any:
        fieldsets: list[Any] = [
            (None, {"fields": ["name", "description"]}),
            ("Draft graph (JSON)", {"fields": ["graph"]}),
        ]
        if obj is not None:
            fieldsets.append(("Published", {"fields": ["published", "versions", "runs"]}))
        return fieldsets

    @admin.display(description="Published")
    def published(self, workflow: Workflow) -> str:
        version = workflow.published_version
        return f"v{version.number}" if version else "-"

    @admin.display(description="Draft")
    def draft_state(self, workflow: Workflow) -> str:
        version = workflow.published_version
        if version is None:
            return "not published"
        return "published" if version.graph == workflow.graph else "unpublished changes"

    @admin.display(description="Rules", ordering="rule_total")
    def rule_count(self, workflow: Workflow) -> str:
        total = getattr(workflow, "rule_total", None)
        return format_html(
            '<a href="{}?workflow__id__exact={}">{}</a>',
            reverse("admin:workflows_rule_changelist"),
            workflow.pk,
            total if total is not None else workflow.rules.count(),
        )

    @admin.display(description="Versions")
    def versions(self, workflow: Workflow) -> str:
        return versions_html(workflow)

    @admin.display(description="Runs")
    def runs(self, workflow: Workflow) -> str:
        url = reverse("admin:workflows_workflowrun_changelist")
        return format_html(
            '<a href="{}?workflow__id__exact={}">Runs</a> &middot; '
            '<a href="{}?workflow__id__exact={}&amp;status__exact=failed">failed</a>',
            url,
            workflow.pk,
            url,
            workflow.pk,
        )

    # --- the change form: the picture of the graph being edited ----------------------------------

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Workflow | None = None,
    ) -> Any:
        form = context["adminform"].form
        graph: Any = (
            obj.graph
            if obj is not None
            else form.get_initial_for_field(form["graph"].field, "graph")
        )
        title = "Draft graph"
        if form.is_bound:  # a form shown again after a POST did not save
            try:
                submitted = json.loads(form.data.get("graph") or "null")
            except json.JSONDecodeError:
                submitted = None
            if submitted is not None:
                graph, title = submitted, "The graph you submitted (not saved)"
        if graph is not None:
            context["workflow_picture"] = picture(graph, errors=getattr(form, "graph_errors", []))
            context["picture_title"] = title
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request: HttpRequest, obj: Workflow, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            workflow = services.workflow_update_draft(
                workflow=Workflow.objects.get(pk=obj.pk),
                name=data["name"],
                description=data["description"],
                graph=data["graph"],
            )
        else:
            workflow = services.workflow_create(
                name=data["name"], description=data["description"], graph=data["graph"]
            )
        obj.pk = workflow.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Workflow) -> None:
        services.workflow_delete(workflow=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        for workflow in queryset:
            services.workflow_delete(workflow=workflow)

    @admin.action(
        description="Publish the drafts of the selected workflows", permissions=["publish"]
    )
    def publish_selected(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        for workflow in queryset:
            self._publish(request, workflow)

    def _publish(self, request: HttpRequest, workflow: Workflow) -> bool:
        try:
            version = services.workflow_publish(workflow=workflow, user=request.user)
        except DomainError as exc:
            errors = getattr(exc, "errors", None)
            detail = "; ".join(error_text(e) for e in errors) if errors else exc.message
            self.message_user(request, f"{workflow}: not published: {detail}", messages.ERROR)
            return False
        self.log_change(request, workflow, f"Published v{version.number}.")
        self.message_user(request, f"{workflow}: published as v{version.number}.", messages.SUCCESS)
        return True

    # --- extra pages ------------------------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("import/", view(self.import_view), name="workflows_workflow_import"),
            path("actions/", view(self.actions_view), name="workflows_workflow_actions"),
            path(
                "<int:object_id>/publish/",
                view(self.publish_view),
                name="workflows_workflow_publish",
            ),
            path(
                "<int:object_id>/restore/<int:number>/",
                view(self.restore_view),
                name="workflows_workflow_restore",
            ),
            path(
                "<int:object_id>/export/", view(self.export_view), name="workflows_workflow_export"
            ),
            path("<int:object_id>/test/", view(self.test_view), name="workflows_workflow_test"),
            *super().get_urls(),
        ]

    def _page(
        self, request: HttpRequest, template: str, title: str, **context: Any
    ) -> TemplateResponse:
        return TemplateResponse(
            request,
            f"admin/workflows/workflow/{template}",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": title,
                **context,
            },
        )

    def _workflow(self, request: HttpRequest, object_id: int, *, change: bool) -> Workflow:
        workflow = get_object_or_404(selectors.workflow_list(), pk=object_id)
        allowed = (
            self.has_change_permission(request, workflow)
            if change
            else self.has_view_permission(request, workflow)
        )
        if not allowed:
            raise PermissionDenied
        return workflow

    def _change_url(self, workflow: Workflow) -> str:
        return reverse("admin:workflows_workflow_change", args=[workflow.pk])

    def publish_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Confirm, then publish the draft as the next version."""
        workflow = self._workflow(request, object_id, change=False)
        if not self.has_publish_permission(request):
            raise PermissionDenied
        if request.method == "POST" and self._publish(request, workflow):
            return HttpResponseRedirect(self._change_url(workflow))
        errors = graph_errors(workflow.graph)
        current = workflow.published_version
        return self._page(
            request,
            "confirm.html",
            f"Publish {workflow}",
            original=workflow,
            picture=picture(workflow.graph, errors=errors),
            errors=[error_text(e) for e in errors],
            question=(
                f"Publish the draft as the next version? Runs started from now on use it"
                f"{f' instead of v{current.number}' if current else ''}."
            ),
            button="Publish",
        )

    def restore_view(self, request: HttpRequest, object_id: int, number: int) -> HttpResponse:
        """Confirm, then publish an earlier version again (the draft becomes a copy of it)."""
        workflow = self._workflow(request, object_id, change=False)
        if not self.has_publish_permission(request):
            raise PermissionDenied
        version = get_object_or_404(selectors.workflow_versions(workflow), number=number)
        lost = self.draft_state(workflow) == "unpublished changes"
        if request.method == "POST":
            services.workflow_restore(workflow=workflow, version=version, user=request.user)
            self.log_change(request, workflow, f"Restored v{number}.")
            self.message_user(
                request, f"{workflow}: v{number} is published again.", messages.SUCCESS
            )
            return HttpResponseRedirect(self._change_url(workflow))
        return self._page(
            request,
            "confirm.html",
            f"Restore v{number} of {workflow}",
            original=workflow,
            picture=picture(version.graph),
            errors=[],
            question=(
                f"Publish v{number} again? The draft is replaced by a copy of it"
                f"{' (its unpublished changes are lost)' if lost else ''}."
            ),
            button=f"Restore v{number}",
        )

    def export_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        workflow = self._workflow(request, object_id, change=False)
        response = JsonResponse(
            exchange.workflow_export(workflow=workflow), json_dumps_params={"indent": 2}
        )
        response["Content-Disposition"] = f'attachment; filename="workflow-{workflow.pk}.json"'
        return response

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Create a workflow (its draft) from an exported JSON document."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        errors: list[str] = []
        if request.method == "POST":
            form = ImportForm(request.POST, request.FILES)
            if form.is_valid():
                try:
                    workflow = exchange.workflow_import(
                        document=form.cleaned_data["document"],
                        name=form.cleaned_data["name"] or None,
                    )
                except DomainError as exc:
                    graph_problems = getattr(exc, "errors", None)
                    errors = (
                        [error_text(e) for e in graph_problems]
                        if graph_problems
                        else [f"{exc.field}: {exc.message}" if exc.field else exc.message]
                    )
                else:
                    self.log_addition(request, workflow, "Imported from JSON.")
                    self.message_user(
                        request,
                        f"Imported {workflow} as a draft: publish it to run it.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(self._change_url(workflow))
        else:
            form = ImportForm()
        return self._page(request, "import.html", "Import a workflow", form=form, errors=errors)

    def test_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Run the draft for an event as a person, rolled back, and show the trace."""
        workflow = self._workflow(request, object_id, change=False)
        if not request.user.has_perm("workflows.run_workflow_test"):
            raise PermissionDenied
        result = None
        error = None
        see_private = can_see_private(request.user)
        if request.method == "POST":
            form = TestForm(request.POST)
            if not see_private and graph_references_private(workflow.graph):
                error = (
                    f"This workflow reads private traits: testing it needs {VIEW_PRIVATE_TRAITS}"
                )
            elif form.is_valid():
                try:
                    result = trial.workflow_test_as(
                        workflow=workflow,
                        event=form.cleaned_data["event"],
                        distinct_id=form.cleaned_data["distinct_id"] or None,
                        traits=form.cleaned_data["traits"],
                    )
                except DomainError as exc:
                    problems = getattr(exc, "errors", None)
                    error = (
                        "; ".join(error_text(e) for e in problems)
                        if problems
                        else (f"{exc.field}: {exc.message}" if exc.field else exc.message)
                    )
                if result is not None and not see_private:
                    result = trial_result_redacted(result)
        else:
            form = TestForm()
        return self._page(
            request,
            "test.html",
            f"Test {workflow}",
            original=workflow,
            form=form,
            result=result,
            error=error,
            trace=[
                {**t, "input": _pretty(t["input"]), "output": _pretty(t["output"])}
                for t in (result or {}).get("trace", [])
            ],
            result_json={
                key: _pretty((result or {}).get(key))
                for key in ("changes", "requests", "variables", "profile_after")
            },
            picture=picture(workflow.graph, trace=(result or {}).get("trace")),
        )

    def actions_view(self, request: HttpRequest) -> HttpResponse:
        """The action registry: built-in actions and those plugins add (entry points)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = []
        for name, cls in sorted(action_classes().items()):
            described = cls.describe()
            module = cls.__module__
            rows.append(
                {
                    **described,
                    "origin": "built-in"
                    if module.startswith(BUILTIN_MODULE)
                    else f"plugin ({module})",
                    "schema": _pretty(described["config_schema"]),
                    "ports": ", ".join(described["ports"]) or "-",
                    "name": name,
                }
            )
        return self._page(request, "actions.html", "Workflow actions", actions=rows)


# --- runs ---------------------------------------------------------------------------------------


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
        return _pre(shown(trace.input))

    @admin.display(description="Output")
    def output_shown(self, trace: NodeTrace) -> str:
        return _pre(shown(trace.output))


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
        return _pre(shown(run.variables or None))

    @admin.display(description="State (while waiting)")
    def state_shown(self, run: WorkflowRun) -> str:
        return _pre(shown(run.state or None))
