"""What actions see and do: the run's event, profile, session, source and variables, and the
changes they stage (profile operations, merges, segment membership, emitted events), which
apps.workflows.effects applies when the run is recorded."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.utils import timezone

from apps.events.models import Event
from apps.profiles import traits as trait_ops
from apps.profiles.models import Profile
from apps.workflows.actions.base import ActionError
from apps.workflows.templating import render_value


class EffectKind(StrEnum):
    """The built-in kinds of staged changes (apps.workflows.effects applies each)."""

    PEOPLE = "people"
    MERGE_BY = "merge_by"
    SEGMENT_ADD = "segment_add"
    SEGMENT_REMOVE = "segment_remove"
    EMIT = "emit"


@dataclass(slots=True)
class Effect:
    """One staged change; `kind` names its applier (an EffectKind for the built-in ones)."""

    kind: str
    node_id: str
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "node": self.node_id, **self.data}


@dataclass(slots=True)
class RunContext:
    """The state of one run, shared by its nodes (read by actions through NodeContext)."""

    workflow_id: int
    distinct_id: str
    event: Event  # saved, or unsaved for ephemeral and test events
    profile: Profile | None
    session: dict[str, Any]
    source: dict[str, Any]
    depth: int = 0
    test: bool = False
    run_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    variables: dict[str, Any] = field(default_factory=dict)
    effects: list[Effect] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    # The profile's traits as the staged operations leave them (what later nodes read).
    preview: trait_ops.TraitTarget = field(init=False)
    event_view: dict[str, Any] = field(init=False)
    started: datetime = field(default_factory=timezone.now)

    def __post_init__(self) -> None:
        profile = self.profile
        self.preview = trait_ops.TraitTarget(
            copy.deepcopy(profile.traits) if profile is not None else {},
            copy.deepcopy(profile.private_traits) if profile is not None else {},
            copy.deepcopy(profile.trait_meta) if profile is not None else {},
        )
        event = self.event
        self.event_view = {
            "id": event.pk,
            "name": event.event_name,
            "event_name": event.event_name,
            "distinct_id": event.distinct_id,
            "category": event.category,
            "message_id": event.message_id,
            "timestamp": event.timestamp.isoformat() if event.timestamp else None,
            "source_id": str(event.source_id) if event.source_id else None,
            "properties": event.properties if isinstance(event.properties, dict) else {},
            "context": event.context if isinstance(event.context, dict) else {},
        }

    def scope(self) -> dict[str, Any]:
        """What templates and paths see."""
        profile = self.profile
        return {
            "event": self.event_view,
            "profile": {
                "id": str(profile.pk) if profile is not None else None,
                "distinct_id": self.distinct_id,
                "traits": self.preview.public,
                "private_traits": self.preview.private,
            },
            "session": self.session,
            "source": self.source,
            "vars": self.variables,
        }

    def merge(self, node: NodeContext) -> None:
        """Take a finished node's staged changes into the run (in completion order)."""
        self.variables.update(node.variables)
        for effect in node.effects:
            if effect.kind == EffectKind.PEOPLE:
                trait_ops.apply_operations(self.preview, effect.data["ops"], timezone.now())
            self.effects.append(effect)
        self.requests.extend(node.requests)


class NodeContext:
    """One node attempt's view of the run. Its changes are kept apart until it succeeds, so a
    failed or timed-out attempt stages nothing."""

    def __init__(self, run: RunContext, node_id: str) -> None:
        self.run = run
        self.node_id = node_id
        self.variables: dict[str, Any] = {}
        self.effects: list[Effect] = []
        self.requests: list[dict[str, Any]] = []
        self.logs: list[str] = []

    # --- reading ------------------------------------------------------------------------------

    @property
    def test(self) -> bool:
        return self.run.test

    @property
    def event(self) -> Event:
        return self.run.event

    @property
    def profile(self) -> Profile | None:
        return self.run.profile

    @property
    def distinct_id(self) -> str:
        return self.run.distinct_id

    @property
    def depth(self) -> int:
        return self.run.depth

    def scope(self) -> dict[str, Any]:
        scope = self.run.scope()
        if self.variables:
            scope["vars"] = {**scope["vars"], **self.variables}
        return scope

    def render(self, value: Any) -> Any:
        return render_value(value, self.scope())

    def lookup(self, path: str) -> tuple[bool, Any]:
        """Read a dotted path ("event.properties.plan", "session.utm_source")."""
        current: Any = self.scope()
        for part in path.split("."):
            if isinstance(current, dict) and part in current:
                current = current[part]
            elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
                current = current[int(part)]
            else:
                return False, None
        return True, current

    def trait(self, key: str) -> tuple[bool, Any]:
        return self.run.preview.get(key)

    # --- staging changes ----------------------------------------------------------------------

    def set_var(self, name: str, value: Any) -> None:
        self.variables[name] = value

    def people(self, ops: dict[str, Any]) -> None:
        """Stage people operations (set, set_once, increment, append, union, remove, unset) on
        the run's profile. Operations that can't apply (incrementing a string) fail the node."""
        trial = trait_ops.TraitTarget(
            copy.deepcopy(self.run.preview.public),
            copy.deepcopy(self.run.preview.private),
            {},
        )
        errors = trait_ops.apply_operations(trial, ops, timezone.now())
        if errors:
            raise ActionError("; ".join(f"{key}: {message}" for key, message in errors.items()))
        self.effects.append(Effect(EffectKind.PEOPLE, self.node_id, {"ops": ops}))

    def merge_by(self, *, identifier: str, kind: str) -> None:
        self.effects.append(
            Effect(EffectKind.MERGE_BY, self.node_id, {"identifier": identifier, "kind": kind})
        )

    def segment_change(self, *, segment: str, add: bool) -> None:
        kind = EffectKind.SEGMENT_ADD if add else EffectKind.SEGMENT_REMOVE
        self.effects.append(Effect(kind, self.node_id, {"segment": segment}))

    def emit(self, *, event_name: str, properties: dict[str, Any], distinct_id: str) -> None:
        index = len(self.effects)
        self.effects.append(
            Effect(
                EffectKind.EMIT,
                self.node_id,
                {
                    "event_name": event_name,
                    "properties": properties,
                    "distinct_id": distinct_id,
                    "message_id": f"wf-{self.run.run_key}-{self.node_id}-{index}",
                },
            )
        )

    def record_request(self, request: dict[str, Any]) -> None:
        self.requests.append({"node": self.node_id, **request})

    def log(self, message: str) -> None:
        self.logs.append(message)
