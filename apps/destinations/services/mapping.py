"""What a destination sends: the scope a mapping reads (event, profile, segment), the standard
payload, a template (the workflow engine's Jinja sandbox) or a field mapping, and the envelope
every delivery carries ({"type", "timestamp", "data"})."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from django.utils import timezone

from apps.destinations.models import Destination, MappingMode
from apps.profiles.models import Profile
from apps.segments.filtering import FilterError, parse_filter
from apps.workflows.actions import ActionError
from apps.workflows.templating import render, render_value, template_check, templates_in

MAX_MAPPING_BYTES = 64 * 1024


class MappingError(Exception):
    """A mapping cannot render (a template fault): the delivery is not written, and the
    message says which part failed."""


def profile_view(profile: Profile | None, *, private: bool = True) -> dict[str, Any]:
    if profile is None:
        return {"id": None, "traits": {}, "private_traits": {}}
    view = {
        "id": str(profile.pk),
        "traits": profile.traits if isinstance(profile.traits, dict) else {},
        "first_seen": profile.first_seen.isoformat() if profile.first_seen else None,
        "last_seen": profile.last_seen.isoformat() if profile.last_seen else None,
        "identified": profile.identified,
    }
    if private:
        view["private_traits"] = (
            profile.private_traits if isinstance(profile.private_traits, dict) else {}
        )
    return view


def event_view(event: Any) -> dict[str, Any]:
    timestamp = getattr(event, "timestamp", None)
    return {
        "name": event.event_name,
        "event_name": event.event_name,
        "distinct_id": event.distinct_id,
        "message_id": event.message_id,
        "timestamp": timestamp.isoformat() if timestamp else None,
        "category": getattr(event, "category", ""),
        "source_id": str(event.source_id) if event.source_id else None,
        "properties": event.properties if isinstance(event.properties, dict) else {},
        "context": event.context if isinstance(event.context, dict) else {},
    }


def standard_payload(trigger: str, scope: dict[str, Any]) -> dict[str, Any]:
    """The payload without a mapping: public traits only (a mapping may add private ones)."""
    profile = scope.get("profile") or {}
    public_profile = {k: v for k, v in profile.items() if k != "private_traits"}
    if trigger == "event":
        return {"event": scope["event"], "profile": public_profile}
    if trigger in ("segment_entered", "segment_exited"):
        return {"segment": scope["segment"], "profile": public_profile}
    if trigger == "workflow":
        return scope.get("data") or {}
    out: dict[str, Any] = {"profile": public_profile}
    if scope.get("changed") is not None:
        out["changed"] = scope["changed"]
    if scope.get("merged_from"):
        out["merged_from"] = scope["merged_from"]
    return out


def _lookup(scope: dict[str, Any], path: str) -> Any:
    current: Any = scope
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


def _assign(target: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = target[part] = {}
        target = nxt
    target[parts[-1]] = value


def mapped(destination: Destination, trigger: str, scope: dict[str, Any]) -> Any:
    """The destination's data for one change (MappingError when a template fails)."""
    try:
        if destination.kind == "email":
            return _email(destination, scope)
        if destination.mapping_mode == MappingMode.TEMPLATE:
            return render_value(destination.mapping.get("template"), scope)
        if destination.mapping_mode == MappingMode.FIELDS:
            out: dict[str, Any] = {}
            for target, source in (destination.mapping.get("fields") or {}).items():
                _assign(out, str(target), _lookup(scope, str(source)))
            return out
    except ActionError as exc:
        raise MappingError(str(exc)) from exc
    return standard_payload(trigger, scope)


def _email(destination: Destination, scope: dict[str, Any]) -> dict[str, Any] | None:
    trait = str(destination.settings.get("to_trait") or "email")
    profile = scope.get("profile") or {}
    to = (profile.get("private_traits") or {}).get(trait) or (profile.get("traits") or {}).get(
        trait
    )
    if not isinstance(to, str) or "@" not in to:
        return None  # nobody to write to: no delivery
    return {
        "to": to,
        "subject": str(render(str(destination.settings["subject"]), scope) or ""),
        "body": str(render(str(destination.settings["body"]), scope) or ""),
    }


def envelope(trigger: str, data: Any) -> dict[str, Any]:
    return {"type": trigger, "timestamp": timezone.now().isoformat(), "data": data}


# --- validation ---------------------------------------------------------------------------


def mapping_check(mode: str, mapping: Any) -> list[tuple[str, str]]:
    if not isinstance(mapping, dict):
        return [("mapping", "must be an object")]
    if len(json.dumps(mapping)) > MAX_MAPPING_BYTES:
        return [("mapping", f"is larger than {MAX_MAPPING_BYTES} bytes")]
    if mode == MappingMode.TEMPLATE:
        if "template" not in mapping:
            return [("mapping.template", "is required with a template mapping")]
        errors = []
        for path, source in templates_in(mapping["template"], "mapping.template"):
            problem = template_check(source)
            if problem:
                errors.append((path, problem))
        return errors
    if mode == MappingMode.FIELDS:
        fields = mapping.get("fields")
        if not isinstance(fields, dict) or not fields:
            return [("mapping.fields", 'must be an object of "target": "source.path"')]
        for target, source in fields.items():
            if not isinstance(source, str) or source.split(".")[0] not in (
                "event",
                "profile",
                "segment",
                "changed",
                "data",
            ):
                return [
                    (
                        f"mapping.fields.{target}",
                        "must be a path starting with event., profile., segment. or data.",
                    )
                ]
    return []


@lru_cache(maxsize=256)
def parsed_event_filter(tree_json: str) -> Any:
    return parse_filter(json.loads(tree_json), scope="event")


def event_filter_check(tree: Any) -> list[tuple[str, str]]:
    try:
        parsed_event_filter(json.dumps(tree, sort_keys=True))
    except FilterError as exc:
        return [
            (
                f"trigger_config.filter.{exc.leaf}" if exc.leaf else "trigger_config.filter",
                exc.reason,
            )
        ]
    except (TypeError, ValueError, RecursionError) as exc:
        return [("trigger_config.filter", str(exc) or type(exc).__name__)]
    return []
