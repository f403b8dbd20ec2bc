"""Workflows as portable JSON documents: what export gives and import takes."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from apps.workflows import services
from apps.workflows.models import Workflow
from cdp.errors import DomainError

FORMAT = "cdp.workflow"
FORMAT_VERSION = 1


def workflow_export(*, workflow: Workflow) -> dict[str, Any]:
    """The workflow's name, description and draft graph, tagged with the format."""
    version = workflow.published_version
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": workflow.name,
        "description": workflow.description,
        "graph": workflow.graph,
        "published_version": version.number if version else None,
        "exported_at": timezone.now().isoformat(),
    }


def workflow_import(*, document: Any, name: str | None = None) -> Workflow:
    """A new workflow whose draft is the document's graph (validated, not published).
    `name` replaces the exported name."""
    if not isinstance(document, dict):
        raise DomainError("a workflow export is a JSON object", field=None)
    if document.get("format", FORMAT) != FORMAT:
        raise DomainError(f'not a workflow export (format is not "{FORMAT}")', field="format")
    format_version = document.get("format_version", FORMAT_VERSION)
    if not isinstance(format_version, int) or format_version > FORMAT_VERSION:
        raise DomainError(
            f"unsupported format_version {format_version!r} (this version reads up to "
            f"{FORMAT_VERSION})",
            field="format_version",
        )
    name = name or document.get("name")
    if not isinstance(name, str) or not name.strip():
        raise DomainError("the workflow needs a name", field="name")
    if len(name) > 200:
        raise DomainError("at most 200 characters", field="name")
    description = document.get("description") or ""
    if not isinstance(description, str):
        raise DomainError("must be a string", field="description")
    if "graph" not in document:
        raise DomainError("the export has no graph", field="graph")
    return services.workflow_create(
        name=name.strip(), description=description, graph=document["graph"]
    )
