"""Applying a run's staged changes (effects): one applier per effect kind, registered by name.

Actions stage changes in the RunContext while the graph executes (nothing is written then);
`effects_apply` writes them when the run is recorded, in the caller's transaction, through the
profile, segment and event services. A kind with no registered applier fails the run.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from apps.events.services import events_emit
from apps.profiles import selectors as profile_selectors
from apps.profiles import services as profile_services
from apps.segments import selectors as segment_selectors
from apps.segments import services as segment_services
from apps.workflows.actions import ActionError
from apps.workflows.context import Effect, EffectKind, RunContext


class EffectApplier:
    """Writes the staged changes of one kind. `apply` gets one change, or with `groups` set
    every consecutive change of the kind at once (written in as few calls as keep their order).
    """

    kind: ClassVar[str]
    groups: ClassVar[bool] = False

    def apply(self, run: RunContext, effects: list[Effect]) -> None:
        raise NotImplementedError


_appliers: dict[str, EffectApplier] = {}

ApplierClass = TypeVar("ApplierClass", bound=type[EffectApplier])


def effect_register(cls: ApplierClass) -> ApplierClass:
    """Register an applier class under its `kind` (a class decorator)."""
    if cls.kind in _appliers:
        raise ValueError(f"an applier for {cls.kind!r} changes is already registered")
    _appliers[cls.kind] = cls()
    return cls


def effect_applier(kind: str) -> EffectApplier:
    """The applier of `kind`; ActionError (the run fails) when none is registered."""
    applier = _appliers.get(kind)
    if applier is None:
        raise ActionError(f"unknown change {kind!r}")
    return applier


def effect_kinds() -> list[str]:
    """The registered kinds, sorted."""
    return sorted(_appliers)


def effects_apply(run: RunContext, effects: list[Effect]) -> None:
    """Apply staged changes in order. Runs in the caller's transaction: an exception leaves
    nothing applied. Consecutive changes of a grouping kind (people operations) go to their
    applier together."""
    pending: list[Effect] = []

    def flush() -> None:
        if pending:
            effect_applier(pending[0].kind).apply(run, list(pending))
            pending.clear()

    for effect in effects:
        if pending and effect.kind != pending[0].kind:
            flush()
        pending.append(effect)
        if not effect_applier(effect.kind).groups:
            flush()
    flush()


# --- people operations ----------------------------------------------------------------------


def _touched(ops: dict[str, Any]) -> set[str]:
    keys: set[str] = set()
    for values in ops.values():
        keys.update(values if isinstance(values, list) else values.keys())
    return keys


def people_steps(effects: list[Effect]) -> list[dict[str, Any]]:
    """Consecutive people operations merged into as few ops dicts as keep their order: a trait
    touched again starts a new dict (people_apply applies one dict's operations in its own
    order, not the staging order)."""
    steps: list[dict[str, Any]] = []
    batch: dict[str, Any] = {}
    batch_keys: set[str] = set()
    for effect in effects:
        ops = effect.data["ops"]
        keys = _touched(ops)
        if keys & batch_keys:  # the same trait twice: keep the order of operations
            steps.append(batch)
            batch, batch_keys = {}, set()
        for op, values in ops.items():
            if op == "unset":
                batch.setdefault(op, []).extend(values)
            else:
                batch.setdefault(op, {}).update(values)
        batch_keys |= keys
    if batch:
        steps.append(batch)
    return steps


def people_only(effects: list[Effect]) -> bool:
    """Whether the changes are people operations only (no profile deletion): those of many
    runs can be applied together (profile_services.people_apply_many)."""
    return all(
        effect.kind == EffectKind.PEOPLE and "delete" not in effect.data["ops"]
        for effect in effects
    )


def people_errors_message(errors: dict[str, str]) -> str:
    return "; ".join(f"{key}: {message}" for key, message in errors.items())


# --- the built-in kinds -----------------------------------------------------------------------


@effect_register
class PeopleApplier(EffectApplier):
    """People operations on the run's profile (set, set_once, increment, ...)."""

    kind = EffectKind.PEOPLE
    groups = True

    def apply(self, run: RunContext, effects: list[Effect]) -> None:
        for ops in people_steps(effects):
            result = profile_services.people_apply(distinct_id=run.distinct_id, ops=ops)
            if result.errors:
                raise ActionError(people_errors_message(result.errors))


@effect_register
class MergeByApplier(EffectApplier):
    """Identify the run's profile by an identifier (merging the profile that has it)."""

    kind = EffectKind.MERGE_BY

    def apply(self, run: RunContext, effects: list[Effect]) -> None:
        for effect in effects:
            profile = profile_selectors.profile_get_for_distinct_id(run.distinct_id)
            if profile is None:
                raise ActionError(f"no profile for {run.distinct_id!r}")
            profile_services.profile_identify_by(
                profile=profile,
                identifier=effect.data["identifier"],
                kind=effect.data["kind"],
                triggered_by=f"workflow {run.workflow_id} (node {effect.node_id})",
            )


@effect_register
class SegmentAddApplier(EffectApplier):
    """Add the run's person to a static segment."""

    kind = EffectKind.SEGMENT_ADD

    def apply(self, run: RunContext, effects: list[Effect]) -> None:
        for effect in effects:
            segment = segment_selectors.segment_get(effect.data["segment"])
            segment_services.segment_members_add(segment=segment, distinct_ids=[run.distinct_id])


@effect_register
class SegmentRemoveApplier(EffectApplier):
    """Remove the run's person from a static segment."""

    kind = EffectKind.SEGMENT_REMOVE

    def apply(self, run: RunContext, effects: list[Effect]) -> None:
        for effect in effects:
            segment = segment_selectors.segment_get(effect.data["segment"])
            segment_services.segment_members_remove(segment=segment, distinct_ids=[run.distinct_id])


@effect_register
class EmitApplier(EffectApplier):
    """Emit an event (processed like any other; its depth stops runaway chains)."""

    kind = EffectKind.EMIT

    def apply(self, run: RunContext, effects: list[Effect]) -> None:
        for effect in effects:
            events_emit(
                distinct_id=effect.data["distinct_id"],
                event_name=effect.data["event_name"],
                properties=effect.data["properties"],
                context={
                    "workflow": {
                        "depth": run.depth + 1,
                        "workflow_id": run.workflow_id,
                        "run": run.run_key,
                    }
                },
                message_id=effect.data["message_id"],
            )
