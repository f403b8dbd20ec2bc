"""What the visual workflow editor reads: the differences between two graphs, and the
template paths (`event.`, `profile.`, `session.`) known from recent events and profiles."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from apps.events.models import Event, Session
from apps.events.privacy import redact_private
from apps.profiles.models import Profile

# How many recent events and profiles the path suggestions look at, and how deep they go.
RECENT_EVENTS = 200
RECENT_PROFILES = 100
MAX_DEPTH = 4
MAX_PATHS = 500

# What a run sees of its event besides properties and context (apps/workflows/context.py).
EVENT_FIELDS = (
    "id",
    "name",
    "event_name",
    "distinct_id",
    "category",
    "message_id",
    "timestamp",
    "source_id",
)
PROFILE_FIELDS = ("id", "distinct_id")


def _node_key(node: dict[str, Any]) -> dict[str, Any]:
    """A node as compared: everything but where it is drawn."""
    return {k: v for k, v in node.items() if k != "position"}


def _edge_key(edge: dict[str, Any]) -> tuple[str, str, str]:
    return (str(edge.get("from")), str(edge.get("port", "out")), str(edge.get("to")))


def graph_diff(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """What changed from `old` (the published graph; None: nothing published) to `new` (the
    draft): nodes added, removed and changed (with the top-level fields and config keys that
    differ), edges added and removed. Positions are not changes."""
    before = {n["id"]: n for n in (old or {}).get("nodes", [])}
    after = {n["id"]: n for n in new.get("nodes", [])}
    changed = []
    for node_id in sorted(before.keys() & after.keys()):
        a, b = _node_key(before[node_id]), _node_key(after[node_id])
        if a == b:
            continue
        fields = sorted(k for k in a.keys() | b.keys() if k != "config" and a.get(k) != b.get(k))
        config_a, config_b = a.get("config") or {}, b.get("config") or {}
        fields += sorted(
            f"config.{k}"
            for k in config_a.keys() | config_b.keys()
            if config_a.get(k) != config_b.get(k)
        )
        changed.append({"node": node_id, "fields": fields})
    edges_before = {_edge_key(e) for e in (old or {}).get("edges", [])}
    edges_after = {_edge_key(e) for e in new.get("edges", [])}

    def as_edges(keys: set[tuple[str, str, str]]) -> list[dict[str, str]]:
        return [{"from": f, "port": p, "to": t} for f, p, t in sorted(keys)]

    return {
        "added": sorted(after.keys() - before.keys()),
        "removed": sorted(before.keys() - after.keys()),
        "changed": changed,
        "edges_added": as_edges(edges_after - edges_before),
        "edges_removed": as_edges(edges_before - edges_after),
    }


def _paths(prefix: str, value: Any, out: set[str], depth: int = 0) -> None:
    if len(out) >= MAX_PATHS:
        return
    out.add(prefix)
    if isinstance(value, dict) and depth < MAX_DEPTH:
        for key, inner in value.items():
            key = str(key)
            if key and "." not in key and " " not in key:
                _paths(f"{prefix}.{key}", inner, out, depth + 1)


def known_paths(*, private: bool) -> list[str]:
    """Template paths seen in the most recent events and profiles, sorted; private traits (and
    the private values identify calls carry) only for users who may see them."""
    out: set[str] = {f"event.{name}" for name in EVENT_FIELDS}
    out |= {f"profile.{name}" for name in PROFILE_FIELDS}
    out |= {f"session.{f.name}" for f in Session._meta.concrete_fields}
    out |= {"event.properties", "event.context", "profile.traits"}
    recent = Event.objects.order_by("-id").values_list("properties", "context")[:RECENT_EVENTS]
    for properties, context in recent:
        if not private:
            properties = redact_private(properties)
        if isinstance(properties, dict):
            _paths("event.properties", properties, out)
        if isinstance(context, dict):
            _paths("event.context", context, out)
    profiles = Profile.objects.order_by("-updated_at").values_list("traits", "private_traits")
    for traits, private_traits in profiles[:RECENT_PROFILES]:
        if isinstance(traits, dict):
            _paths("profile.traits", traits, out)
        if private and isinstance(private_traits, dict):
            _paths("profile.private_traits", private_traits, out)
    if private:
        out |= {f"profile.private_traits.{name}" for name in settings.CDP_PRIVATE_TRAITS}
    return sorted(out)[:MAX_PATHS]


def editor_config(*, user: Any, workflow: Any, sync_field: str = "") -> dict[str, Any]:
    """What the editor component (templates workflows/editor.html) starts from: the API's
    URLs and what this user may do there (the API checks the same permissions again)."""
    from django.urls import reverse

    def may(*perms: str) -> bool:
        return bool(user.has_perms(perms))

    pk = workflow.pk
    return {
        "workflow": pk,
        "sync_field": sync_field,
        "api": {
            "workflow": reverse("workflow-detail", args=[pk]),
            "actions": reverse("action-list"),
            "validate": reverse("workflow-validate"),
            "filter_text": reverse("workflow-filter-text"),
            "paths": reverse("workflow-paths"),
            "diff": reverse("workflow-diff", args=[pk]),
            "publish": reverse("workflow-publish", args=[pk]),
            "restore": reverse("workflow-restore", args=[pk]),
            "test": reverse("workflow-test", args=[pk]),
            "runs": reverse("workflow-runs", args=[pk]),
            "run": reverse("run-detail", args=[0]).replace("/0", "/{id}"),
            "events": reverse("event-list"),
        },
        "can": {
            "change": may("workflows.view_workflow", "workflows.change_workflow"),
            "publish": may("workflows.publish_workflow"),
            "test": may("workflows.view_workflow", "workflows.run_workflow_test"),
            "runs": may("workflows.view_workflow", "workflows.view_workflowrun"),
            "events": may("events.view_event"),
            "paths": may("workflows.view_workflow", "events.view_event"),
        },
    }
