"""generate_demo_data: a product's worth of realistic activity, sent through the real ingest
path (the Segment-compatible /v1/batch endpoint with a source's write key), so that identity
stitching, sessions, profiles and segments all run as they do for real traffic."""

from __future__ import annotations

import base64
import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test import Client
from django.utils import timezone
from tqdm import tqdm

from apps.segments import services as segment_services
from apps.segments.models import Segment
from apps.sources import services as source_services
from apps.sources.models import EventSource

DEMO_SOURCE = "Demo website"
BATCH = 400
MAX_PEOPLE = 100_000
MAX_DAYS = 365

# (utm_source, utm_medium, utm_campaign, referrer, weight): how people first arrive.
CHANNELS = [
    ("google", "cpc", "spring_sale", "https://www.google.com/", 26),
    ("google", "organic", "", "https://www.google.com/", 18),
    ("facebook", "social", "retargeting", "https://www.facebook.com/", 12),
    ("newsletter", "email", "weekly_digest", "", 10),
    ("linkedin", "social", "b2b_launch", "https://www.linkedin.com/", 8),
    ("producthunt", "referral", "launch_day", "https://www.producthunt.com/", 6),
    ("", "", "", "", 20),  # direct
]
DEVICES = [
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0 Safari/537.36",
        45,
    ),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0", 20),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        25,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0 Mobile Safari/537.36",
        10,
    ),
]
COUNTRIES = ["US", "DE", "FR", "GB", "BR", "IN", "JP", "CA", "ES", "NL"]
FIRST_NAMES = ["Ada", "Ben", "Chloe", "Diego", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jon"]
LAST_NAMES = ["Keller", "Lopez", "Martin", "Nakamura", "Okafor", "Petit", "Quinn", "Rossi"]
COMPANIES = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka"]
PLANS = [("starter", 19), ("pro", 49), ("team", 99)]
FEATURES = ["created_report", "invited_teammate", "exported_csv", "connected_source"]
DEMO_SEGMENTS = [
    ("paying-customers", "Paying customers", 'performed "purchased"'),
    ("activated", "Activated users", 'performed "completed_onboarding"'),
    ("active-7d", "Active in the last 7 days", "last_seen in_the_last 7 days"),
    ("pro-plan", "Pro plan", 'traits.plan is "pro"'),
]


def _pick(rng: random.Random, weighted: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    return rng.choices(weighted, weights=[w[-1] for w in weighted])[0]


@dataclass
class Person:
    anonymous_id: str
    channel: tuple[Any, ...]
    user_agent: str
    country: str
    user_id: str | None = None
    engagement: float = 0.5
    messages: list[dict[str, Any]] = field(default_factory=list)


class Sender:
    """Posts messages to /v1/batch with the write key, BATCH at a time, as an SDK would."""

    def __init__(self, source: EventSource) -> None:
        self.client = Client()
        token = base64.b64encode(f"{source.write_key}:".encode()).decode()
        self.auth = f"Basic {token}"
        self.buffer: list[dict[str, Any]] = []
        self.sent = 0

    def add(self, messages: list[dict[str, Any]]) -> None:
        self.buffer.extend(messages)
        if len(self.buffer) >= BATCH:
            self.flush()

    def flush(self) -> None:
        while self.buffer:
            chunk, self.buffer = self.buffer[:BATCH], self.buffer[BATCH:]
            response = self.client.post(
                "/v1/batch",
                data=orjson.dumps({"batch": chunk}),
                content_type="application/json",
                HTTP_AUTHORIZATION=self.auth,
            )
            if response.status_code >= 300:
                raise CommandError(
                    f"The tracking endpoint refused a batch ({response.status_code}): "
                    f"{response.content[:300]!r}. Is the source {DEMO_SOURCE!r} enabled?"
                )
            self.sent += len(chunk)


class Command(BaseCommand):
    help = (
        "Fill the database with realistic demo activity (sign-ups, activation, purchases, "
        "returning users, campaigns) through the tracking endpoint."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--people", type=int, default=500, help="How many visitors.")
        parser.add_argument("--days", type=int, default=30, help="Over how many past days.")
        parser.add_argument("--seed", type=int, default=None, help="For a repeatable data set.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        people, days = options["people"], options["days"]
        if not 1 <= people <= MAX_PEOPLE:
            raise CommandError(f"--people must be between 1 and {MAX_PEOPLE}")
        if not 1 <= days <= MAX_DAYS:
            raise CommandError(f"--days must be between 1 and {MAX_DAYS}")
        if "testserver" not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS:
            settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
        # Each processed batch would log a line: keep the progress bar readable.
        logging.getLogger("celery").setLevel(logging.WARNING)
        rng = random.Random(options["seed"])
        source = EventSource.objects.filter(name=DEMO_SOURCE).first() or (
            source_services.source_create(name=DEMO_SOURCE)
        )
        self._segments()
        sender = Sender(source)
        now = timezone.now()
        start = now - timedelta(days=days)
        bar = tqdm(total=people, desc="Visitors", unit="person", disable=options["no_progress"])
        for index in range(people):
            # Arrivals grow over the period (a product gaining traction).
            first = start + timedelta(seconds=(days * 86400) * (rng.random() ** 0.8))
            person = Person(
                anonymous_id=f"anon-{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}",
                channel=_pick(rng, CHANNELS),
                user_agent=str(_pick(rng, DEVICES)[0]),
                country=rng.choice(COUNTRIES),
                engagement=rng.betavariate(2, 3),
            )
            self._journey(rng, person, index, first, now)
            person.messages.sort(key=lambda m: m["timestamp"])
            sender.add(person.messages)
            bar.update(1)
        sender.flush()
        bar.close()
        self.stdout.write(
            self.style.SUCCESS(
                f"Sent {sender.sent} messages for {people} visitors over {days} days through "
                f"/v1/batch (source {source.name!r})."
            )
        )

    def _segments(self) -> None:
        for key, name, text in DEMO_SEGMENTS:
            if not Segment.objects.filter(key=key).exists():
                segment_services.segment_create(key=key, name=name, filter_text=text)

    # --- one person's life ------------------------------------------------------------------

    def _context(self, person: Person, path: str, first_session: bool) -> dict[str, Any]:
        source, medium, campaign, referrer, _ = person.channel
        context: dict[str, Any] = {
            "userAgent": person.user_agent,
            "locale": "en-US",
            "timezone": "UTC",
            "location": {"country": person.country},
            "page": {"path": path, "url": f"https://shop.example.com{path}"},
        }
        if first_session and source:
            context["campaign"] = {"source": source, "medium": medium}
            if campaign:
                context["campaign"]["name"] = campaign
        if first_session and referrer:
            context["page"]["referrer"] = referrer
        return context

    def _ids(self, person: Person) -> dict[str, Any]:
        ids: dict[str, Any] = {"anonymousId": person.anonymous_id}
        if person.user_id:
            ids["userId"] = person.user_id
        return ids

    def _page(self, person: Person, at: datetime, path: str, first: bool = False) -> None:
        person.messages.append(
            {
                "type": "page",
                "messageId": str(uuid.uuid4()),
                "name": path.strip("/").capitalize() or "Home",
                "properties": {"path": path},
                "context": self._context(person, path, first),
                "timestamp": at.isoformat(),
                **self._ids(person),
            }
        )

    def _track(
        self, person: Person, at: datetime, event: str, props: dict[str, Any] | None = None
    ) -> None:
        person.messages.append(
            {
                "type": "track",
                "messageId": str(uuid.uuid4()),
                "event": event,
                "properties": props or {},
                "context": self._context(person, "/app", False),
                "timestamp": at.isoformat(),
                **self._ids(person),
            }
        )

    def _journey(
        self, rng: random.Random, person: Person, index: int, at: datetime, now: datetime
    ) -> None:
        step = lambda: timedelta(seconds=rng.randint(8, 140))  # noqa: E731
        self._page(person, at, "/", first=True)
        at += step()
        if rng.random() < 0.6:
            self._page(person, at, rng.choice(["/pricing", "/features", "/blog/launch"]))
            at += step()
        if rng.random() < 0.45:
            self._page(person, at, "/pricing")
            at += step()
        if rng.random() > 0.42 + 0.2 * (1 - person.engagement):
            return  # a visitor who never signed up
        self._page(person, at, "/signup")
        at += step()
        person.user_id = f"user-{index + 1}"
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        company = rng.choice(COMPANIES)
        person.messages.append(
            {
                "type": "identify",
                "messageId": str(uuid.uuid4()),
                "traits": {
                    "email": f"{first.lower()}.{last.lower()}{index}@{company}.example",
                    "name": f"{first} {last}",
                    "plan": "free",
                    "country": person.country,
                    "company": company,
                },
                "context": self._context(person, "/signup", False),
                "timestamp": at.isoformat(),
                **self._ids(person),
            }
        )
        self._track(person, at, "signed_up", {"method": rng.choice(["email", "google"])})
        if rng.random() < 0.6:
            person.messages.append(
                {
                    "type": "group",
                    "messageId": str(uuid.uuid4()),
                    "groupId": company,
                    "traits": {"name": company.capitalize(), "type": "company"},
                    "timestamp": at.isoformat(),
                    **self._ids(person),
                }
            )
        at += timedelta(minutes=rng.randint(1, 90))
        activated = rng.random() < 0.35 + 0.6 * person.engagement
        if activated and at < now:
            self._track(person, at, "completed_onboarding", {"steps": rng.randint(3, 6)})
            at += step()
            self._track(
                person, at, "created_project", {"template": rng.choice(["blank", "crm", "shop"])}
            )
        purchased = False
        day = at
        # Returning visits: each later day, a chance to come back that fades with time.
        while True:
            day += timedelta(days=1, hours=rng.uniform(-5, 5))
            if day >= now:
                break
            age = (day - at).days
            chance = (0.55 if activated else 0.12) * person.engagement * (0.93**age) + 0.02
            if rng.random() > chance:
                continue
            visit = day
            self._page(person, visit, "/dashboard")
            for _ in range(rng.randint(1, 4)):
                visit += step()
                self._track(person, visit, rng.choice(FEATURES))
            if activated and not purchased and rng.random() < 0.18 + 0.3 * person.engagement:
                plan, price = rng.choice(PLANS)
                visit += step()
                self._page(person, visit, "/checkout")
                visit += step()
                self._track(
                    person,
                    visit,
                    "purchased",
                    {"plan": plan, "price": price, "currency": "USD"},
                )
                person.messages.append(
                    {
                        "type": "identify",
                        "messageId": str(uuid.uuid4()),
                        "traits": {"plan": plan},
                        "timestamp": visit.isoformat(),
                        **self._ids(person),
                    }
                )
                purchased = True
