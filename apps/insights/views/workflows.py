"""Workflows in the dashboard: the list, a new workflow, and the visual editor (the same
component the admin's workflow page shows; its data goes through the workflows API)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from apps.insights.views.access import page, require
from apps.workflows import selectors as workflow_selectors
from apps.workflows import services as workflow_services
from apps.workflows.editor import editor_config

MAX_NAME = 200


@require_http_methods(["GET"])
@page("workflows.view_workflow")
def workflow_list(request: HttpRequest) -> HttpResponseBase:
    workflows = list(workflow_selectors.workflow_list().order_by("name")[:500])
    for workflow in workflows:
        version = workflow.published_version
        workflow.state = (  # type: ignore[attr-defined]
            "not published"
            if version is None
            else ("published" if version.graph == workflow.graph else "unpublished changes")
        )
    return render(request, "insights/workflow_list.html", {"workflows": workflows})


@require_POST
@page("workflows.view_workflow")
def workflow_create(request: HttpRequest) -> HttpResponseBase:
    require(request, "workflows.add_workflow")
    name = request.POST.get("name", "").strip()
    if not name or len(name) > MAX_NAME:
        messages.error(request, f"A workflow needs a name of 1 to {MAX_NAME} characters.")
        return redirect("insights:workflow_list")
    workflow = workflow_services.workflow_create(name=name)
    return redirect("insights:workflow_editor", pk=workflow.pk)


@require_http_methods(["GET"])
@page("workflows.view_workflow")
def workflow_editor(request: HttpRequest, pk: int) -> HttpResponseBase:
    workflow = workflow_selectors.workflow_list().filter(pk=pk).first()
    if workflow is None:
        raise Http404("No such workflow")
    config = editor_config(user=request.user, workflow=workflow)
    context = {"workflow": workflow, "editor_config": config}
    return render(request, "insights/workflow_editor.html", context)
