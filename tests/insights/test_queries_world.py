"""Generated data for the query-runner tests (hypothesis strategies), stored rows, and the
plain-Python view of them the reference implementations read. No tests here."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from hypothesis import strategies as st

from apps.events.models import Event
from apps.profiles.models import Identity, Profile
from apps.sources.models import EventSource

# A Monday, 10:00 UTC; events fall within 40 days after it (DST changes in March in both
# zones the tests use).
BASE = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
NAMES = ["signup", "view", "buy", "leave", "page_view"]
PLANS = ["pro", "free", None]
PATHS = ["/", "/pricing", "/docs"]
_ids = itertools.count()


@dataclass
class Row:
    person: int  # index of the person; -1: a distinct_id nobody resolved
    alias: int  # which of the person's distinct ids sent it
    name: str
    ts: datetime
    plan: str | None
    amount: Any
    path: str
    # A client may send any category, "internal" too: only the platform flag (events_emit
    # sets it) keeps an event out of activity.
    category: str = "custom"
    platform: bool = False
    # Sent without a profile: nobody's, though its distinct_id may be a person's.
    personless: bool = False
    id: int = 0
    distinct_id: str = ""  # set when stored  # event id once stored


@dataclass
class World:
    rows: list[Row]
    people: list[str] = field(default_factory=list)  # profile id (str) per person index

    def person_of(self, row: Row) -> str | None:
        """The person of an event: none for personless events, even on a person's id."""
        return None if row.person < 0 or row.personless else self.people[row.person]

    def visitor_of(self, row: Row) -> str | None:
        """Whose sessions an event is in: its person's, or a personless event's distinct_id."""
        return f"~{row.distinct_id}" if row.personless else self.person_of(row)


def offsets(max_minutes: int = 40 * 24 * 60) -> st.SearchStrategy[int]:
    # Mostly close together (windows, sessions), some on exact day and hour boundaries.
    return st.one_of(
        st.integers(0, max_minutes),
        st.integers(0, 40).map(lambda d: d * 24 * 60),
        st.integers(0, 60),
        st.integers(0, 40).map(lambda d: d * 24 * 60 - 1).filter(lambda m: m >= 0),
    )


def rows(max_size: int = 30, names: list[str] = NAMES) -> st.SearchStrategy[list[Row]]:
    row = st.builds(
        Row,
        person=st.integers(-1, 4),
        alias=st.integers(0, 1),
        name=st.sampled_from(names),
        ts=offsets().map(lambda m: BASE + timedelta(minutes=m)),
        plan=st.sampled_from(PLANS),
        amount=st.one_of(st.integers(-5, 100), st.sampled_from([1.5, "7", None, True])),
        path=st.sampled_from(PATHS),
        category=st.sampled_from(["custom", "custom", "internal"]),
        platform=st.sampled_from([False, False, False, True]),
        personless=st.sampled_from([False, False, False, True]),
    )
    return st.lists(row, max_size=max_size)


def store(world: World) -> None:
    """Five people, each with two distinct ids (a merged profile: both ids point at it)."""
    source = EventSource.objects.create(name=f"s{next(_ids)}")
    ids: list[list[str]] = []
    for _ in range(5):
        profile = Profile.objects.create(traits={"plan": "pro" if len(ids) % 2 else "free"})
        world.people.append(str(profile.pk))
        pair = [f"d{next(_ids)}", f"d{next(_ids)}"]
        for distinct_id in pair:
            Identity.objects.create(distinct_id=distinct_id, profile=profile)
        ids.append(pair)
    events = []
    for row in world.rows:
        distinct_id = ids[row.person][row.alias] if row.person >= 0 else f"x{next(_ids)}"
        row.distinct_id = distinct_id
        row.personless = row.personless and not row.platform  # the platform's have a person
        properties: dict[str, Any] = {"path": row.path}
        if row.plan is not None:
            properties["plan"] = row.plan
        if row.amount is not None:
            properties["amount"] = row.amount
        events.append(
            Event(
                source=source,
                message_id=f"m{next(_ids)}",
                event_name=row.name,
                distinct_id=distinct_id,
                category=row.category,
                platform=row.platform,
                personless=row.personless,
                timestamp=row.ts,
                received_at=row.ts,
                properties=properties,
            )
        )
    for row, event in zip(world.rows, Event.objects.bulk_create(events), strict=True):
        row.id = event.pk
    if world.rows and not world.rows[0].id:
        raise AssertionError("bulk_create did not return ids")


@contextmanager
def rolled_back() -> Iterator[None]:
    """One hypothesis example's rows, undone afterwards whatever happens."""
    with transaction.atomic():
        try:
            yield
        finally:
            transaction.set_rollback(True)
