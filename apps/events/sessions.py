"""Sessionization: which session each event belongs to.

A new session starts after the source's inactivity timeout, at midnight in the visitor's
timezone (when the context carries one), and when the UTM campaign changes. An event that
carries a client-supplied session id always joins that session. A session keeps the context
it began in (referrer, campaign, landing page, device) and its events inherit it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apps.events import enrichment
from apps.events.models import Session
from apps.sources.models import EventSource


class SessionizedEvent(Protocol):
    """What sessionization needs of an event: a stored Event or an ephemeral IncomingEvent."""

    @property
    def distinct_id(self) -> str: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def context(self) -> Any: ...
    @property
    def session_key(self) -> str: ...
    @property
    def source_id(self) -> Any: ...
    @property
    def personless(self) -> bool | None: ...


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    if not name or len(name) > 64:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _local_date(moment: datetime, zone: ZoneInfo) -> Any:
    return moment.astimezone(zone).date()


def _entry_details(event: SessionizedEvent) -> dict[str, Any]:
    """What a session keeps of the event it starts with: how the visitor came, on what."""
    context = event.context
    device = enrichment.device_from_user_agent(enrichment.user_agent(context))
    campaign = enrichment.utm(context)
    ref = enrichment.referrer(context)
    zone_name = enrichment.context_timezone(context)
    return {
        "referrer": ref,
        "referring_domain": enrichment.referring_domain(ref),
        "landing_page": enrichment.page_url(context),
        "utm_source": campaign.get("source", ""),
        "utm_medium": campaign.get("medium", ""),
        "utm_campaign": campaign.get("campaign", ""),
        "utm_term": campaign.get("term", ""),
        "utm_content": campaign.get("content", ""),
        "timezone": zone_name if _zone(zone_name) else "",
        "locale": enrichment.context_locale(context),
        "browser": device.browser,
        "browser_version": device.browser_version,
        "os": device.os,
        "os_version": device.os_version,
        "device_type": device.device_type,
        "device_brand": device.device_brand[:100],
        "device_model": device.device_model[:100],
    }


def session_from_event(source_id: str, event: SessionizedEvent, key: str = "") -> Session:
    """A new session that starts with this event and keeps its context."""
    session_id = uuid.uuid4()
    return Session(
        id=session_id,
        source_id=source_id,
        distinct_id=event.distinct_id,
        key=key or str(session_id),
        started_at=event.timestamp,
        last_event_at=event.timestamp,
        event_count=0,
        personless=bool(event.personless),
        **_entry_details(event),
    )


def _fits(session: Session, event: SessionizedEvent, timeout: timedelta) -> bool:
    """Can this event continue this session under the splitting rules?"""
    ts = event.timestamp
    if ts > session.last_event_at + timeout or ts < session.started_at - timeout:
        return False
    zone = _zone(enrichment.context_timezone(event.context)) or _zone(session.timezone)
    if zone is not None and _local_date(ts, zone) != _local_date(session.started_at, zone):
        return False
    campaign = enrichment.utm(event.context).get("campaign", "")
    if ts < session.started_at:
        # A late, earlier event: in time order it came first, so the session continues it
        # unless the session already began with another campaign.
        return not (campaign and session.utm_campaign and campaign != session.utm_campaign)
    return not (campaign and campaign != session.utm_campaign)


def _current(sessions: Sequence[Session], moment: datetime) -> Session | None:
    """The session a person was in at `moment`: the last one started by then (for an event
    older than all of them, the first). Only it may continue: an earlier session that a later
    one superseded (a new campaign, midnight) stays closed."""
    started = [s for s in sessions if s.started_at <= moment]
    if started:
        return max(started, key=lambda s: s.started_at)
    return min(sessions, key=lambda s: s.started_at, default=None)


def lock_keys(events: Iterable[SessionizedEvent]) -> set[str]:
    """The names of the locks processing must hold: one per person, one per client session."""
    keys = set()
    for event in events:
        keys.add(f"p:{event.source_id}:{event.distinct_id}")
        if event.session_key:
            keys.add(f"s:{event.source_id}:{event.session_key}")
    return keys


class SessionAssignment:
    """The outcome of sessionizing a batch: the session of each event, and what to save."""

    def __init__(self) -> None:
        self.session_of: dict[int, Session] = {}  # index in the batch -> session
        self.new: dict[uuid.UUID, Session] = {}
        self.changed: dict[uuid.UUID, Session] = {}

    def attach(self, index: int, session: Session, event: SessionizedEvent) -> None:
        self.session_of[index] = session
        session.event_count += 1
        if event.timestamp < session.started_at:
            # An earlier event arrived late (offline device, batch retry): it is the session's
            # real entry, so the session takes its details where it has them.
            for name, value in _entry_details(event).items():
                if value:
                    setattr(session, name, value)
            session.started_at = event.timestamp
        session.last_event_at = max(session.last_event_at, event.timestamp)
        if session.id not in self.new:
            self.changed[session.id] = session


def sessions_assign(
    events: Sequence[SessionizedEvent], *, sources: dict[str, EventSource]
) -> SessionAssignment:
    """Decide the session of every event (in time order per person). Saves nothing."""
    assignment = SessionAssignment()
    if not events:
        return assignment
    order = sorted(range(len(events)), key=lambda i: events[i].timestamp)
    by_key, open_sessions = _load_candidates(events, sources)

    for index in order:
        event = events[index]
        source_id = str(event.source_id)
        if event.session_key:
            session = by_key.get((source_id, event.session_key))
            if session is None:
                session = session_from_event(source_id, event, key=event.session_key)
                by_key[(source_id, event.session_key)] = session
                assignment.new[session.id] = session
            assignment.attach(index, session, event)
            continue
        timeout = timedelta(minutes=sources[source_id].session_timeout_minutes)
        # A personless visit and a person's visit of the same distinct_id stay apart.
        candidates = open_sessions[(source_id, event.distinct_id, bool(event.personless))]
        session = _current(candidates, event.timestamp)
        if session is None or not _fits(session, event, timeout):
            session = session_from_event(source_id, event)
            candidates.append(session)
            assignment.new[session.id] = session
        assignment.attach(index, session, event)
    return assignment


def _load_candidates(
    events: Sequence[SessionizedEvent], sources: dict[str, EventSource]
) -> tuple[dict[tuple[str, str], Session], dict[tuple[str, str, bool], list[Session]]]:
    """Sessions the batch may continue: by client key, and each person's recent sessions."""
    keyed = {(str(e.source_id), e.session_key) for e in events if e.session_key}
    people = {(str(e.source_id), e.distinct_id) for e in events if not e.session_key}
    by_key: dict[tuple[str, str], Session] = {}
    open_sessions: dict[tuple[str, str, bool], list[Session]] = defaultdict(list)

    if keyed:
        found = Session.objects.filter(
            source_id__in={s for s, _ in keyed}, key__in={k for _, k in keyed}
        )
        for session in found:
            pair = (str(session.source_id), session.key)
            if pair in keyed:
                by_key[pair] = session
    if people:
        earliest = min(e.timestamp for e in events)
        longest = max(sources[s].session_timeout_minutes for s, _ in people)
        recent = Session.objects.filter(
            source_id__in={s for s, _ in people},
            distinct_id__in={d for _, d in people},
            last_event_at__gte=earliest - timedelta(minutes=longest),
        ).order_by("last_event_at")
        for session in recent:
            pair = (str(session.source_id), session.distinct_id)
            if pair in people:
                open_sessions[(*pair, session.personless)].append(session)
    return by_key, open_sessions
