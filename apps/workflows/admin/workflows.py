"""Admin for workflows: the graph as a picture, the JSON editor with inline errors, publish,
restore, export, import, test runs, and the action registry page."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from apps.workflows import import_export, selectors, services
from apps.workflows.actions import action_classes
from apps.workflows.admin.forms import ImportForm, TestForm, WorkflowAdminForm
from apps.workflows.admin.rendering import error_text, picture, pretty, versions_html
from apps.workflows.editor import editor_config
from apps.workflows.graph import graph_errors
from apps.workflows.models import Workflow
from apps.workflows.privacy import graph_references_private, trial_result_redacted
from cdp.errors import DomainError
from cdp.privacy import VIEW_PRIVATE_TRAITS, can_see_private

BUILTIN_MODULE = "apps.workflows.actions"


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
        if obj is not None and not form.is_bound:
            # The visual editor, kept in step with the JSON field below (the form's Save
            # button saves what the editor drew).
            context["editor_config"] = editor_config(
                user=request.user, workflow=obj, sync_field="id_graph"
            )
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
            import_export.workflow_export(workflow=workflow), json_dumps_params={"indent": 2}
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
                    workflow = import_export.workflow_import(
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
                    result = services.workflow_test_as(
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
                {**t, "input": pretty(t["input"]), "output": pretty(t["output"])}
                for t in (result or {}).get("trace", [])
            ],
            result_json={
                key: pretty((result or {}).get(key))
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
                    "schema": pretty(described["config_schema"]),
                    "ports": ", ".join(described["ports"]) or "-",
                    "name": name,
                }
            )
        return self._page(request, "actions.html", "Workflow actions", actions=rows)
