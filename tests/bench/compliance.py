"""Benchmark: ingest with 5 data-compliance rules active costs at most 1.2x ingest with none.

The same 500-event batches (nested user objects, arrays of items, e-mails and phones) are
posted to POST /api/track in-process (Django's test client, no network: body parsing,
validation, the ingest gates, the one-statement insert, committed) with no rule, then with 5
rules (remove, hash twice, mask twice; two of them conditional on a consent type, so the
person's consents are read too), interleaved batch by batch; medians compared. The rules
are compiled when they change, outside the timed batches, as a process compiles them once
per change.

    DATABASE_URL=postgres://... python -m tests.bench.compliance [--rounds 7] [--batch-size 500]

Runs in a throw-away database (<name>_bench_compliance, created and dropped here).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Any

from tests.bench.common import django_setup, throwaway_database

NAME = "compliance"
LIMIT = 1.2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=7, help="rounds of paired batches")
    parser.add_argument("--batches", type=int, default=10, help="paired batches per round")
    parser.add_argument("--batch-size", type=int, default=500, help="events per batch")


def _batch(size: int, people: int = 50) -> bytes:
    import orjson

    events = [
        {
            "event_name": "order_completed",
            "distinct_id": f"person-{n % people}",
            "message_id": uuid.uuid4().hex,
            "properties": {
                "user": {"email": f"person{n}@example.com", "plan": "pro", "age": 30 + n % 40},
                "items": [{"sku": f"S-{k}", "price": k * 3, "note": "gift"} for k in range(3)],
                "phone": "+1 555-0100",
                "card_last4": "4242",
                "total": 99.5,
                "path": f"/p/{n % 20}",
            },
            "context": {"page": {"url": "https://x.test/"}},
        }
        for n in range(size)
    ]
    return orjson.dumps({"batch": events})


def _rules_create() -> None:
    from apps.consents.models import ComplianceRule, ConsentType

    marketing, _ = ConsentType.objects.get_or_create(key="marketing", defaults={"name": "M"})
    specs = [
        ("properties.user.email", "hash", ""),
        ("properties.phone", "mask", ""),
        ("properties.card_last4", "remove", "order_completed"),
        ("properties.items[].note", "mask", "order_completed"),
        ("properties.user.age", "hash", ""),
    ]
    for i, (path, action, event_name) in enumerate(specs):
        rule = ComplianceRule.objects.create(
            name=f"rule {i}", path=path, action=action, event_name=event_name
        )
        if i < 2:
            rule.consent_types.set([marketing])


def _rules(enabled: bool) -> None:
    """Turn the 5 rules on or off (as saving them in the admin would: a new rules version),
    and compile them, as the first batch after a change does. A process compiles its rules
    once per change, not per batch: the pairing of batches here (against the machine's drift)
    must not charge a compilation to every batch of one side."""
    from apps.consents.gates import compliance_rules_changed, compliance_rules_compiled
    from apps.consents.models import ComplianceRule

    ComplianceRule.objects.update(enabled=enabled)
    compliance_rules_changed()
    if len(compliance_rules_compiled()) != (5 if enabled else 0):
        raise RuntimeError("the rules did not compile as expected")


def _timed(client: Any, write_key: str, size: int, batches: int) -> float:
    import orjson

    prepared = [_batch(size) for _ in range(batches)]
    started = time.perf_counter()
    for body in prepared:
        response = client.post(
            "/api/track", body, content_type="application/json", HTTP_X_WRITE_KEY=write_key
        )
        accepted = orjson.loads(response.content).get("accepted")
        if response.status_code != 200 or accepted != size:
            raise RuntimeError(f"only {accepted} of {size} events stored: {response.content!r}")
    return (time.perf_counter() - started) / (batches * size)


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    if args is None:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args([])
    from django.db import connection
    from django.test import Client

    from apps.consents import services as consent_services
    from apps.consents.models import ComplianceRule, ConsentType
    from apps.sources import services as source_services

    source = source_services.source_create(
        name=f"bench {uuid.uuid4().hex[:6]}", rate_limit_per_second=0
    )
    client, key = Client(), source.write_key
    ConsentType.objects.get_or_create(key="marketing", defaults={"name": "M"})
    for n in range(0, 50, 2):  # half the people granted marketing: both branches run
        consent_services.consents_record(
            distinct_id=f"person-{n}", decisions={"marketing": True}, channel="api"
        )
    _rules_create()
    _rules(False)
    _timed(client, key, args.batch_size, 2)  # warm-up
    _rules(True)
    _timed(client, key, args.batch_size, 2)
    if ComplianceRule.objects.filter(enabled=True).count() != 5:
        raise RuntimeError("the rules were not created")
    # Paired, batch by batch (the machine's load drifts: a round-level comparison would
    # measure the drift), each side's median of every batch.
    none: list[float] = []
    five: list[float] = []
    for _ in range(args.rounds * args.batches):
        _rules(False)
        none.append(_timed(client, key, args.batch_size, 1))
        _rules(True)
        five.append(_timed(client, key, args.batch_size, 1))
    none_us, five_us = statistics.median(none) * 1e6, statistics.median(five) * 1e6
    ratio = five_us / none_us
    return {
        "name": NAME,
        "database": connection.vendor,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "none_us_per_event": round(none_us, 1),
        "five_us_per_event": round(five_us, 1),
        "none_runs": [round(t * 1e6, 1) for t in none],
        "five_runs": [round(t * 1e6, 1) for t in five],
        "ratio": round(ratio, 3),
        "limit": LIMIT,
        "ok": ratio <= LIMIT,
    }


def report(result: dict[str, Any]) -> str:
    return (
        f"compliance ({result['database']}): POST /api/track of {result['batch_size']}-event "
        "batches "
        f"{result['none_us_per_event']:.1f} us/event with no rule, "
        f"{result['five_us_per_event']:.1f} us/event with 5 rules (medians of "
        f"{len(result['none_runs'])} paired batches); ratio {result['ratio']:.2f} "
        f"(limit {result['limit']}) -> "
        f"{'OK' if result['ok'] else 'TOO SLOW'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    django_setup()
    with throwaway_database("bench_compliance"):
        result = run(args)
    print(report(result))
    print(f"no rule (us/event, first 10): {result['none_runs'][:10]}")
    print(f"5 rules (us/event, first 10): {result['five_runs'][:10]}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
