"""What the workflow admin pages show: JSON blocks, graph errors, the graph as a picture and
a workflow's versions."""

from __future__ import annotations

import json
from typing import Any

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from apps.workflows import selectors
from apps.workflows.actions import action_classes
from apps.workflows.graph_svg import graph_svg
from apps.workflows.models import Workflow


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def pre(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return format_html('<pre style="white-space:pre-wrap;margin:0">{}</pre>', pretty(value))


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
