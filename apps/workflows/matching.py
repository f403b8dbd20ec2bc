"""Matching processed events to routing rules, over a rules table cached in each process.

The table (enabled rules of published workflows, indexed by event name) is kept in process
memory while its shared version (cdp/shared_version.py) is unchanged. Any change to a rule or a
workflow's published version moves the version (after its commit), so every worker reloads
within CDP_SHARED_VERSION_CHECK_SECONDS.

Matching during processing is by event name and source only (dictionary lookups). A rule's
condition (the filter language, scope "event") is evaluated by the worker that runs the
workflow, before the run starts: it may read the profile's events and segments, which must
not slow processing down. A rule whose condition is false starts no run (and records none).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from apps.events.incoming import IncomingEvent
from apps.events.models import Event
from apps.segments.filtering import Filter, FilterError, parse_filter
from apps.workflows.models import Rule
from cdp.shared_version import SharedVersion

logger = logging.getLogger(__name__)

RULES_VERSION = SharedVersion("workflows:rules:version")


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: int
    name: str
    event_name: str
    source_id: str | None
    workflow_id: int
    version_id: int
    priority: int
    condition: Filter | None


@dataclass(slots=True)
class RulesTable:
    by_name: dict[str, list[CompiledRule]] = field(default_factory=dict)
    any_name: list[CompiledRule] = field(default_factory=list)
    by_id: dict[int, CompiledRule] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.by_id

    def match(self, event: Event | IncomingEvent) -> list[CompiledRule]:
        """The rules whose event name and source match the event, highest priority first."""
        named = self.by_name.get(event.event_name)
        candidates = [*named, *self.any_name] if named else self.any_name
        if not candidates:
            return []
        source_id = str(event.source_id)
        matched = [r for r in candidates if r.source_id is None or r.source_id == source_id]
        if named and self.any_name and len(matched) > 1:
            matched.sort(key=lambda r: (-r.priority, r.id))
        return matched


def event_depth(event: Event | IncomingEvent) -> int:
    """How many workflow-emitted events led to this one (0 for events from outside)."""
    context = event.context if isinstance(event.context, dict) else {}
    workflow = context.get("workflow")
    depth = workflow.get("depth") if isinstance(workflow, dict) else None
    return depth if isinstance(depth, int) and not isinstance(depth, bool) else 0


def _load() -> RulesTable:
    table = RulesTable()
    rules = Rule.objects.filter(
        enabled=True, workflow__published_version__isnull=False
    ).select_related("workflow")
    for rule in rules.order_by("-priority", "id"):
        condition = None
        if rule.condition:
            try:
                condition = parse_filter(rule.condition, scope="event")
            except FilterError as exc:
                logger.error(
                    "Rule %s (%s) is skipped: its condition is invalid: %s", rule.pk, rule.name, exc
                )
                continue
        version_id = rule.workflow.published_version_id
        assert version_id is not None
        compiled = CompiledRule(
            id=rule.pk,
            name=rule.name,
            event_name=rule.event_name,
            source_id=str(rule.source_id) if rule.source_id else None,
            workflow_id=rule.workflow_id,
            version_id=version_id,
            priority=rule.priority,
            condition=condition,
        )
        table.by_id[rule.pk] = compiled
        if rule.event_name:
            table.by_name.setdefault(rule.event_name, []).append(compiled)
        else:
            table.any_name.append(compiled)
    return table


class _Memo:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.version: str | None = None
        self.table: RulesTable | None = None


_memo = _Memo()


def rules_table() -> RulesTable:
    """The rules table, from process memory while its shared version is unchanged."""
    version = RULES_VERSION.token()
    table = _memo.table
    if table is not None and version is not None and version == _memo.version:
        return table
    with _memo.lock:
        if _memo.table is None or version is None or version != _memo.version:
            _memo.table = _load()
            _memo.version = version
        return _memo.table


def rules_cache_clear() -> None:
    """Forget this process's table (the next read reloads it)."""
    with _memo.lock:
        _memo.table = None
        _memo.version = None


def rules_invalidate() -> None:
    """Rules or published versions changed: this process reloads now, the others after the
    commit."""
    rules_cache_clear()
    RULES_VERSION.changed()
