"""Private traits in workflows: which graphs and rules read them (users without the
permission may not write or test those), and the redaction of test results and run records
shown to users without `profiles.view_private_traits`."""

from __future__ import annotations

from typing import Any

from apps.segments.filtering import filter_references_private
from apps.workflows.templating import (
    path_references_private,
    template_references_private,
    templates_in,
)
from cdp.privacy import VIEW_PRIVATE_TRAITS, can_see_private, private_values, redact_json

FILTER_ACTIONS = ("condition",)
PATH_KEYS = ("from",)


def graph_references_private(graph: Any) -> bool:
    """Whether any node of a graph reads private traits: a template, a condition's filter or
    a copied path."""
    nodes = graph.get("nodes") if isinstance(graph, dict) else None
    for node in nodes if isinstance(nodes, list) else []:
        config = node.get("config") if isinstance(node, dict) else None
        if not isinstance(config, dict):
            continue
        if node.get("action") in FILTER_ACTIONS and filter_references_private(config.get("filter")):
            return True
        if any(
            isinstance(config.get(key), str) and path_references_private(config[key])
            for key in PATH_KEYS
        ):
            return True
        if any(template_references_private(source) for _, source in templates_in(config)):
            return True
    return False


def trial_result_redacted(result: dict[str, Any]) -> dict[str, Any]:
    """A test run's result without private traits: the profile's private traits are dropped
    and their values (as the run leaves them, and those the test event carried) are
    replaced wherever they appear (variables, changes, requests, trace)."""
    after = result.get("profile_after") or {}
    values = private_values(
        after.get("private_traits") or {},
        *(_event_properties(record.get("input")) for record in result.get("trace") or []),
    )
    return redact_json(result, values)


def _event_properties(value: Any) -> Any:
    return value.get("properties") if isinstance(value, dict) else None


def run_private_values(run: Any) -> frozenset[str]:
    """The private values a run's records may hold: its profile's private traits now and the
    private payload of its event."""
    from apps.events.models import Event
    from apps.profiles.models import Profile

    traits = (
        Profile.objects.filter(pk=run.profile_id).values_list("private_traits", flat=True).first()
        if run.profile_id
        else None
    )
    properties = (
        Event.objects.filter(pk=run.event_ref).values_list("properties", flat=True).first()
        if run.event_ref
        else None
    )
    return private_values(traits or {}, properties or {})


def private_read_error(user: Any, *, condition: Any = None, graph: Any = None) -> str | None:
    """For forms: why this user may not save this condition or graph, or None."""
    if can_see_private(user):
        return None
    if filter_references_private(condition):
        return f"A condition on private traits needs the permission {VIEW_PRIVATE_TRAITS}"
    if graph is not None and graph_references_private(graph):
        return f"A workflow that reads private traits needs the permission {VIEW_PRIVATE_TRAITS}"
    return None
