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
    candidates = [e for e in events if "consent" in e.context or e.context.get("gpc") is True]
    if not candidates:
        return
    types = selectors.consent_types_enabled()
    if not types:
        return
    for event in sorted(candidates, key=lambda e: e.timestamp):
        decisions = _carried_decisions(event, types)
        if not decisions:
            continue
        gpc_only = "consent" not in event.context
        try:
            services.consents_record(
                distinct_id=event.distinct_id,
                decisions=decisions,
                channel=ConsentChannel.GPC if gpc_only else ConsentChannel.SEGMENT,
                source=source if source.pk else None,
                at=event.timestamp,
            )
        except services.ConsentError as exc:  # a refused revocation: the event goes on
            logger.warning("Consent carried by message %s not recorded: %s", event.message_id, exc)


# --- enforcement --------------------------------------------------------------------------------


def _count_dropped(source: EventSource, reason: str, n: int) -> None:
    """Dropped events are counted per source and reason (cache counters, shown in the admin)."""
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


def compliance_gate(*, source: EventSource, events: list[IncomingEvent]) -> GateOutcome:
    rules = selectors.compliance_rules_enabled()
    if rules:
        compliance_apply(rules=rules, events=events)
    return GateOutcome(kept=events)


def compliance_apply(*, rules: list[Any], events: list[IncomingEvent]) -> int:
    """Apply the rules to the events in place; returns how many events were changed."""
    secret = compliance.hash_secret() if any(r.action == "hash" for r in rules) else None
    compiled = []
    needed_types: set[int] = set()
    for rule in rules:
        try:
            path = compliance.path_compile(rule.path)
        except compliance.PathError:
            logger.warning("Compliance rule %s has a bad path %r: skipped", rule.pk, rule.path)
            continue
        types = list(rule.consent_types.all())
        needed_types.update(t.pk for t in types)
        compiled.append((rule, path, types, compliance.transform_for(rule.action, secret)))
    decisions = (
        selectors.decisions_for_distinct_ids({e.distinct_id for e in events}, needed_types)
        if needed_types
        else {}
    )
    now = timezone.now()
    changed = 0
    for event in events:
        if event.event_name in CONSENT_EVENT_NAMES:
            continue
        root = {"properties": event.properties, "context": event.context}
        touched = False
        for rule, path, types, transform in compiled:
            if rule.event_name and rule.event_name not in ("*", event.event_name):
                continue
            person = decisions.get(event.distinct_id)
            if types and all(selectors.consent_holds(t, person, now) for t in types):
                continue
            for route in path.routes:
                touched = compliance.apply_path(root, route, transform) or touched
        if touched:
            event_reserialize(event)
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
    compliance_apply(rules=rules, events=[event])
    return {
        "event_name": event.event_name,
        "properties": event.properties,
        "context": event.context,
    }
