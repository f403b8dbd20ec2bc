"""Generated histories for the score tests, sent through the tracking endpoint: the target
(`purchase`) depends on known features, so a model has something real to find.

Half of the people are engaged (many page views, against a few for the others) and, apart from
that, one in three is on the "pro" plan (a trait). Everyone signed up 60 days ago; page views
spread over the following days; in each of two 14-day windows before now a person purchases
with probability 0.03, plus 0.45 if engaged, plus 0.45 if pro. A score trained 14 days ago
(cutoff 28 days ago) learns from the first window; the second one holds the "later
converters" the trained model never saw."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

BATCH = 1000


@dataclass
class History:
    now: datetime
    engaged: set[str] = field(default_factory=set)
    # Purchases in (now - 28d, now - 14d] and in (now - 14d, now].
    first_window: set[str] = field(default_factory=set)
    later: set[str] = field(default_factory=set)
    people: list[str] = field(default_factory=list)


def _event(distinct_id: str, name: str, when: datetime, n: int) -> dict[str, Any]:
    return {
        "event_name": name,
        "distinct_id": distinct_id,
        "timestamp": when.isoformat(),
        "message_id": f"gen-{n}",
    }


def send_history(
    tracker: Any,
    *,
    people: int = 300,
    seed: int = 7,
    purchase: str = "purchase",
    base: float = 0.03,
    engaged_effect: float = 0.45,
    pro_effect: float = 0.45,
) -> History:
    """Send the history (in batches), return who is who."""
    rng = random.Random(seed)
    now = timezone.now()
    history = History(now=now)
    events: list[dict[str, Any]] = []
    identities: list[dict[str, Any]] = []
    start = now - timedelta(days=60)
    for i in range(people):
        distinct_id = f"person-{i}"
        history.people.append(distinct_id)
        engaged = i % 2 == 0
        if engaged:
            history.engaged.add(distinct_id)
        pro = i % 3 == 0
        identities.append(
            {
                "type": "identify",
                "userId": distinct_id,
                "traits": {"plan": "pro" if pro else "free", "seats": rng.randint(1, 5)},
                "timestamp": start.isoformat(),
                "messageId": f"identify-{i}",
            }
        )
        events.append(_event(distinct_id, "signed_up", start, len(events)))
        views = rng.randint(12, 20) if engaged else rng.randint(0, 3)
        for _ in range(views):
            when = start + timedelta(days=rng.uniform(1, 59.5))
            events.append(_event(distinct_id, "page_view", when, len(events)))
        rate = base + engaged_effect * engaged + pro_effect * pro
        for window_end, bucket in (
            (now - timedelta(days=14), history.first_window),
            (now, history.later),
        ):
            if rng.random() < rate:
                when = window_end - timedelta(days=rng.uniform(0.1, 13.5))
                events.append(_event(distinct_id, purchase, when, len(events)))
                bucket.add(distinct_id)
    for i in range(0, len(identities), BATCH // 2):
        # Segment's batch carries identify calls (the native one, tracks only).
        response = tracker.post({"batch": identities[i : i + BATCH // 2]}, path="/v1/batch")
        assert response.status_code == 200, response.content
    for i in range(0, len(events), BATCH):
        response = tracker.post({"batch": events[i : i + BATCH]}, path="/api/track")
        assert response.status_code == 200, response.content
    return history
