"""Matching processed events to routing rules, over a rules table cached in each process.

The table (enabled rules of published workflows, indexed by event name) is kept in process
memory and trusted for CDP_WORKFLOW_RULES_CACHE_SECONDS; after that, one cache read of a version
key tells whether it changed. Any change to a rule or a workflow's published version bumps the
key (after its commit), so every worker reloads within that time.

Matching during processing is by event name and source only (dictionary lookups). A rule's
condition (the filter language, scope "event") is evaluated by the worker that runs the
workflow, before the run starts: it may read the profile's events and segments, which must
not slow processing down. A rule whose condition is false starts no run (and records none).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from apps.events.incoming import IncomingEvent
from apps.events.models import Event
from apps.segments.filtering import Filter, FilterError, parse_filter
from apps.workflows.models import Rule

logger = logging.getLogger(__name__)

VERSION_KEY = "workflows:rules:version"


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
        self.checked = 0.0
        self.table: RulesTable | None = None


_memo = _Memo()


def _current_version() -> str:
    version = cache.get(VERSION_KEY)
    if version is None:
        version = uuid.uuid4().hex
        # add: two processes racing here agree on one value.
        if not cache.add(VERSION_KEY, version, None):
            version = cache.get(VERSION_KEY) or version
    return str(version)


def rules_table() -> RulesTable:
    """The rules table, from process memory while the version key is unchanged."""
    now = time.monotonic()
    table = _memo.table
    if table is not None and now - _memo.checked < settings.CDP_WORKFLOW_RULES_CACHE_SECONDS:
        return table
    with _memo.lock:
        version = _current_version()
        if _memo.table is None or version != _memo.version:
            _memo.table = _load()
            _memo.version = version
        _memo.checked = time.monotonic()
        return _memo.table


def _bump() -> None:
    cache.set(VERSION_KEY, uuid.uuid4().hex, None)
    rules_cache_clear()


def rules_cache_clear() -> None:
    """Forget this process's table (the next read reloads it)."""
    with _memo.lock:
        _memo.table = None
        _memo.version = None


def rules_invalidate() -> None:
    """Rules or published versions changed: every process reloads after the commit."""
    rules_cache_clear()
    transaction.on_commit(_bump)
