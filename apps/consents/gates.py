"""The ingest gates consents register (apps/events/hooks.py), run on every batch before storage:

1. `consents.collect_and_enforce`: records the decisions events carry (Segment's
   `context.consent.categoryPreferences`, the Global Privacy Control flag), then, for a source
   that requires consent, drops the events of people who lack a required consent type (consent
   events themselves always pass).
2. `consents.compliance`: applies the data-compliance rules (remove, hash, mask) to what is kept.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from apps.consents import compliance, selectors, services
from apps.consents.models import ConsentChannel, ConsentType
from apps.events.hooks import Dropped, GateOutcome, event_reserialize
from apps.events.incoming import IncomingEvent
from apps.sources.models import EventSource
from cdp.shared_version import SharedVersion

logger = logging.getLogger(__name__)

COLLECT_GATE = "consents.collect_and_enforce"
COMPLIANCE_GATE = "consents.compliance"
COLLECT_ORDER = 20  # after suppression of erased people, before compliance
COMPLIANCE_ORDER = 30
CONSENT_MISSING = "consent_missing"
# Events a consent-required source stores whatever the person's consent: the decisions.
CONSENT_EVENT_NAMES = services.CONSENT_EVENTS | {"$consent"}
_GRANTED = {True: True, False: False, "granted": True, "denied": False, "yes": True, "no": False}


# --- collection ---------------------------------------------------------------------------------


def categories_to_decisions(
    categories: Any, types: dict[str, ConsentType]
) -> dict[str, bool] | None:
    """A CMP's categories ({"ad_storage": "granted", "Analytics": true}) as decisions on consent
    types: a category maps through CDP_CONSENT_CATEGORY_MAP, else names the type of the same key
    (case-insensitive); categories that name no type are ignored. None when malformed: not an
    object, or a value other than true/false/"granted"/"denied"."""
    if not isinstance(categories, dict):
        return None
    mapping = settings.CDP_CONSENT_CATEGORY_MAP
    decisions: dict[str, bool] = {}
    for category, value in categories.items():
        if not isinstance(value, bool | str) or value not in _GRANTED:
            return None
        key = mapping.get(category)
        if not isinstance(key, str):
            key = str(category).lower()
        if key in types:
            decisions[key] = _GRANTED[value]
    return decisions


def _carried_decisions(event: IncomingEvent, types: dict[str, ConsentType]) -> dict[str, bool]:
    context = event.context
    decisions: dict[str, bool] = {}
    if context.get("gpc") is True:
        decisions.update({key: False for key, t in types.items() if t.denied_by_gpc})
    consent = context.get("consent")
    if isinstance(consent, dict) and "categoryPreferences" in consent:
        found = categories_to_decisions(consent["categoryPreferences"], types)
        if found is None:
            logger.warning(
                "Ignored malformed context.consent.categoryPreferences of message %s",
                event.message_id,
            )
        else:
            decisions.update(found)
    return decisions


def _record_carried(source: EventSource, events: list[IncomingEvent]) -> None:
    """Record the decisions the batch's events carry: one call per person (their events'
    decisions in time order, the latest winning), not one per event."""
    candidates = [e for e in events if "consent" in e.context or e.context.get("gpc") is True]
    if not candidates:
        return
    types = selectors.consent_types_enabled()
    if not types:
        return
    per_person: dict[str, tuple[dict[str, bool], datetime, bool]] = {}
    for event in sorted(candidates, key=lambda e: e.timestamp):
        decisions = _carried_decisions(event, types)
        if not decisions:
            continue
        before, _, gpc_only = per_person.get(event.distinct_id, ({}, event.timestamp, True))
        per_person[event.distinct_id] = (
            {**before, **decisions},
            event.timestamp,
            gpc_only and "consent" not in event.context,
        )
    for distinct_id, (decisions, at, gpc_only) in per_person.items():
        try:
            services.consents_record(
                distinct_id=distinct_id,
                decisions=decisions,
                channel=ConsentChannel.GPC if gpc_only else ConsentChannel.SEGMENT,
                source=source,
                at=at,
            )
        except services.ConsentError as exc:  # a refused revocation: the events go on
            logger.warning("Consent carried by events of a person not recorded: %s", exc)


# --- enforcement --------------------------------------------------------------------------------


def _count_dropped(source: EventSource, reason: str, n: int) -> None:
    """Dropped events are counted per source and reason (cache counters: `dropped_count`)."""
    key = f"consents:dropped:{source.pk}:{reason}"
    try:
        cache.add(key, 0, timeout=None)
        cache.incr(key, n)
    except Exception:
        logger.warning("Could not count %d dropped events of source %s", n, source.pk)


def dropped_count(source: EventSource, reason: str = CONSENT_MISSING) -> int:
    try:
        return int(cache.get(f"consents:dropped:{source.pk}:{reason}") or 0)
    except Exception:
        return 0


def _enforce(
    source: EventSource, events: list[IncomingEvent], now: datetime
) -> tuple[list[IncomingEvent], list[Dropped]]:
    required = selectors.consent_types_required()
    decisions = selectors.decisions_for_distinct_ids(
        {e.distinct_id for e in events}, [t.pk for t in required]
    )
    kept: list[IncomingEvent] = []
    dropped: list[Dropped] = []
    for event in events:
        if event.event_name in CONSENT_EVENT_NAMES:
            kept.append(event)
            continue
        person = decisions.get(event.distinct_id)
        missing = [t.key for t in required if not selectors.consent_holds(t, person, now)]
        if missing:
            dropped.append(
                Dropped(
                    event=event,
                    reason=CONSENT_MISSING,
                    message=(
                        f"not stored: source {source.name!r} requires consent and "
                        f"{event.distinct_id!r} has not granted {', '.join(missing)} "
                        "(send the decision first: POST /api/consent)"
                    ),
                )
            )
        else:
            kept.append(event)
    return kept, dropped


def collect_and_enforce(*, source: EventSource, events: list[IncomingEvent]) -> GateOutcome:
    _record_carried(source, events)
    if not source.requires_consent:
        return GateOutcome(kept=events)
    if selectors.consent_types_required():
        kept, dropped = _enforce(source, events, timezone.now())
    else:
        # No required type: any grant of an enabled type will do; no type at all: there is
        # nothing to consent to, so nothing is enforced (see docs/privacy.md).
        all_types = list(ConsentType.objects.filter(enabled=True).values_list("pk", flat=True))
        if not all_types:
            return GateOutcome(kept=events)
        kept, dropped = _enforce_any(source, events, all_types)
    if dropped:
        for reason, n in Counter(d.reason for d in dropped).items():
            _count_dropped(source, reason, n)
    return GateOutcome(kept=kept, dropped=dropped)


def _enforce_any(
    source: EventSource, events: list[IncomingEvent], type_ids: list[int]
) -> tuple[list[IncomingEvent], list[Dropped]]:
    now = timezone.now()
    decisions = selectors.decisions_for_distinct_ids({e.distinct_id for e in events}, type_ids)
    kept: list[IncomingEvent] = []
    dropped: list[Dropped] = []
    for event in events:
        person = decisions.get(event.distinct_id) or {}
        if event.event_name in CONSENT_EVENT_NAMES or any(d.holds(now) for d in person.values()):
            kept.append(event)
        else:
            dropped.append(
                Dropped(
                    event=event,
                    reason=CONSENT_MISSING,
                    message=(
                        f"not stored: source {source.name!r} requires consent and "
                        f"{event.distinct_id!r} has granted none (send the decision first: "
                        "POST /api/consent)"
                    ),
                )
            )
    return kept, dropped


# --- compliance ---------------------------------------------------------------------------------


# Compiled once per process while this version is unchanged (a change made by another process
# is seen within CDP_SHARED_VERSION_CHECK_SECONDS).
RULES_VERSION = SharedVersion("consents:compliance-rules-version")


@dataclass(frozen=True, slots=True)
class CompiledRule:
    event_name: str
    types: tuple[ConsentType, ...]
    # One per route of the path: whether it starts at properties (else at context), and the
    # keys under that root.
    routes: tuple[tuple[bool, tuple[str, ...]], ...]
    transform: compliance.Transform
    # Hash and mask: the same value gives the same answer, worth remembering within a batch.
    remember: bool

    def batch_appliers(self) -> list[tuple[bool, compliance.Applier]]:
        """The functions that apply the rule, for one batch (with that batch's memory)."""
        transform = compliance.remembering(self.transform) if self.remember else self.transform
        return [(start, compliance.path_applier(keys, transform)) for start, keys in self.routes]


_compiled: dict[str, Any] = {"stamp": None, "rules": []}


def compliance_rules_changed() -> None:
    """Rules or consent types changed: every process compiles the rules again on its next
    batch (the version lives in the shared cache)."""
    RULES_VERSION.changed()


def compile_rules(rules: list[Any]) -> list[CompiledRule]:
    secret = compliance.hash_secret() if any(r.action == "hash" for r in rules) else None
    compiled = []
    for rule in rules:
        try:
            path = compliance.path_compile(rule.path)
        except compliance.PathError:
            logger.warning("Compliance rule %s has a bad path %r: skipped", rule.pk, rule.path)
            continue
        compiled.append(
            CompiledRule(
                event_name="" if rule.event_name == "*" else rule.event_name,
                types=tuple(rule.consent_types.all()),
                # Every route starts at properties or context (path_compile).
                routes=tuple((route[0] == "properties", route[1:]) for route in path.routes),
                transform=compliance.transform_for(rule.action, secret),
                remember=rule.action in ("hash", "mask"),
            )
        )
    return compiled


def compliance_rules_compiled() -> list[CompiledRule]:
    """The enabled rules, compiled; kept in this process until the shared version changes."""
    version = RULES_VERSION.token()
    stamp = (version, settings.CDP_HASH_SECRET)
    if version is not None and _compiled["stamp"] == stamp:
        return list(_compiled["rules"])
    rules = compile_rules(selectors.compliance_rules_enabled())
    _compiled["stamp"], _compiled["rules"] = (stamp if version is not None else None), rules
    return list(rules)


def compliance_gate(*, source: EventSource, events: list[IncomingEvent]) -> GateOutcome:
    rules = compliance_rules_compiled()
    if rules:
        compliance_apply(rules=rules, events=events)
    return GateOutcome(kept=events)


def compliance_apply(*, rules: list[CompiledRule], events: list[IncomingEvent]) -> int:
    """Apply the compiled rules to the events in place; returns how many were changed."""
    needed_types = {t.pk for rule in rules for t in rule.types}
    decisions = (
        selectors.decisions_for_distinct_ids({e.distinct_id for e in events}, needed_types)
        if needed_types
        else {}
    )
    now = timezone.now()
    appliers = [rule.batch_appliers() for rule in rules]
    # The rules that apply depend only on the event's name and its person's consents: worked
    # out once per (name, person) of the batch, not once per event, as a flat list of appliers.
    applying: dict[tuple[str, str], list[tuple[bool, compliance.Applier]]] = {}
    changed = 0
    for event in events:
        name = event.event_name
        if name in CONSENT_EVENT_NAMES:
            continue
        key = (name, event.distinct_id if needed_types else "")
        todo = applying.get(key)
        if todo is None:
            person = decisions.get(event.distinct_id)
            todo = applying[key] = [
                applier
                for rule, rule_appliers in zip(rules, appliers, strict=True)
                if (not rule.event_name or rule.event_name == name)
                and not (
                    rule.types and all(selectors.consent_holds(t, person, now) for t in rule.types)
                )
                for applier in rule_appliers
            ]
        if not todo:
            continue
        properties = context = False
        for in_properties, apply in todo:
            if in_properties:
                if apply(event.properties):
                    properties = True
            elif apply(event.context):
                context = True
        if properties or context:
            event_reserialize(event, properties=properties, context=context)
            changed += 1
    return changed


def compliance_dry_run(*, rules: list[Any], sample: dict[str, Any]) -> dict[str, Any]:
    """What the rules would make of a sample event ({event_name, distinct_id, properties,
    context}), as if its person had granted nothing; stores nothing."""
    event = IncomingEvent(
        source_id="",
        message_id="dry-run",
        event_name=str(sample.get("event_name") or "sample"),
        distinct_id="dry-run",
        timestamp=timezone.now(),
        received_at=timezone.now(),
        properties=dict(sample.get("properties") or {}),
        context=dict(sample.get("context") or {}),
    )
    compliance_apply(rules=compile_rules(rules), events=[event])
    return {
        "event_name": event.event_name,
        "properties": event.properties,
        "context": event.context,
    }
