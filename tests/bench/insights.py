"""Benchmark: each insight runner against one filtered scan of the same rows (the events the
runner reads, people resolved through the identity table), in the same run. Targets: a
3-step funnel at most 3x its scan, a daily unique-people trend and first-time weekly
retention at most 2x theirs; paths are reported.

    DATABASE_URL=postgres://... python -m tests.bench.insights [--profiles 100000]
        [--events 1000000] [--repeats 5]

Runs in a throw-away database (<name>_bench_insights, created and dropped here), never in the
configured one. PostgreSQL only: the data is generated in SQL (generate_series).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from tests.bench.common import django_setup, throwaway_database

NAME = "insights"
LIMITS = {"funnel": 3.0, "trends": 2.0, "retention": 2.0, "paths": None}

# One in five profiles also has an anonymous id that sends a third of its events (a merged
# person: both ids resolve to one profile). Events spread over 60 days: half page views, the
# rest clicks and the funnel's signup / activate / purchase.
_PROFILES_SQL = """
INSERT INTO profiles_profile (id, traits, private_traits, trait_meta, first_seen, last_seen,
                              event_count, session_count, identified, created_at, updated_at)
SELECT md5('profile-' || n)::uuid,
       jsonb_build_object('plan', CASE WHEN n %% 5 = 0 THEN 'pro' ELSE 'free' END),
       '{}'::jsonb, '{}'::jsonb, %(now)s - interval '60 days', %(now)s, 10, 2, true,
       %(now)s, %(now)s
FROM generate_series(1, %(profiles)s) AS n
"""
_IDENTITIES_SQL = """
INSERT INTO profiles_identity (distinct_id, profile_id, kind, created_at)
SELECT 'user-' || n, md5('profile-' || n)::uuid, 'user_id', %(now)s
FROM generate_series(1, %(profiles)s) AS n
UNION ALL
SELECT 'anon-' || n, md5('profile-' || n)::uuid, 'anonymous', %(now)s
FROM generate_series(1, %(profiles)s) AS n WHERE n %% 5 = 1
"""
_EVENTS_SQL = """
INSERT INTO events_event (source_id, message_id, event_name, distinct_id, category, timestamp,
                          received_at, properties, context, session_key, processed_at)
SELECT %(source)s::uuid, 'bench-' || i,
       CASE WHEN i %% 20 < 10 THEN 'page_view' WHEN i %% 20 < 14 THEN 'click'
            WHEN i %% 20 < 17 THEN 'signup' WHEN i %% 20 < 19 THEN 'activate'
            ELSE 'purchase' END,
       CASE WHEN p %% 5 = 1 AND i %% 3 = 0 THEN 'anon-' ELSE 'user-' END || p,
       'custom', t, t,
       jsonb_build_object('amount', i %% 97, 'path', '/p' || (i %% 7)), '{}'::jsonb, '', %(now)s
FROM (
    SELECT i, 1 + (hashint4(i) & 2147483647) %% %(profiles)s AS p,
           %(now)s - ((hashint4(i * 7 + 1) & 2147483647) %% 5184000) * interval '1 second' AS t
    FROM generate_series(1, %(events)s) AS i
) AS g
"""

# The baseline: one filtered scan of the rows a runner reads, people resolved through the
# identity table, counted per person (so the hash of the identity table is built, as the
# runners must).
SCAN_SQL = """
SELECT count(DISTINCT pi.profile_id) FROM events_event e
JOIN profiles_identity pi ON pi.distinct_id = e.distinct_id
WHERE e.event_name = ANY(%s) AND e.timestamp >= %s AND e.timestamp < %s
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profiles", type=int, default=100_000, help="profiles to generate")
    parser.add_argument("--events", type=int, default=1_000_000, help="events to generate")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each query")


def _generate(profiles: int, events: int) -> dict[str, float]:
    from django.db import connection, transaction
    from django.utils import timezone

    from apps.sources import services as source_services

    source = source_services.source_create(name="bench insights")
    params: dict[str, Any] = {
        "now": timezone.now(),
        "profiles": profiles,
        "events": events,
        "source": source.pk,
    }
    took = {}
    for name, sql in (
        ("profiles", _PROFILES_SQL),
        ("identities", _IDENTITIES_SQL),
        ("events", _EVENTS_SQL),
    ):
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
        took[name] = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE profiles_profile")
        cursor.execute("VACUUM ANALYZE profiles_identity")
        cursor.execute("VACUUM ANALYZE events_event")
    return took


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _scan(names: list[str], start: Any, end: Any) -> Callable[[], Any]:
    from django.db import connection

    def run() -> Any:
        with connection.cursor() as cursor:
            cursor.execute(SCAN_SQL, [names, start, end])
            return cursor.fetchone()[0]

    return run


def _cases(now: Any) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """name -> (runner, the scan of the same rows)."""
    from apps.insights.queries import (
        FunnelQuery,
        PathsQuery,
        RetentionQuery,
        TrendsQuery,
        run_funnel,
        run_paths,
        run_retention,
        run_trends,
    )

    trends = TrendsQuery.from_dict(
        {"series": [{"event": "page_view", "math": "unique_people"}], "date_from": "-30d"},
        now=now,
    )
    funnel = FunnelQuery.from_dict(
        {
            "steps": [{"event": "signup"}, {"event": "activate"}, {"event": "purchase"}],
            "window": {"value": 14, "unit": "day"},
            "date_from": "-30d",
        },
        now=now,
    )
    retention = RetentionQuery.from_dict(
        {
            "start": {"event": "signup"},
            "return": {"event": "page_view"},
            "retention_type": "first_time",
            "period": "week",
            "periods": 4,
            "date_from": "-4w",
        },
        now=now,
    )
    paths = PathsQuery.from_dict(
        {"start_point": "/p1", "event_names": ["page_view", "signup"], "date_from": "-7d"},
        now=now,
    )
    tr, fr, pr = (q.date_range for q in (trends, funnel, paths))
    return {
        "trends": (
            lambda: run_trends(trends, use_cache=False),
            _scan(["page_view"], tr.start, tr.end),
        ),
        "funnel": (
            lambda: run_funnel(funnel, use_cache=False),
            _scan(["signup", "activate", "purchase"], fr.start, fr.end + funnel.window),
        ),
        "retention": (
            lambda: run_retention(retention, use_cache=False),
            # First-time cohorts read every signup up to the range's end, returns after its start.
            _scan(["signup", "page_view"], now - timedelta(days=61), now),
        ),
        "paths": (
            lambda: run_paths(paths, use_cache=False),
            _scan(["page_view", "signup"], pr.start, pr.end),
        ),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from django.db import connection
    from django.utils import timezone

    if connection.vendor != "postgresql":
        raise SystemExit("The insights benchmark needs PostgreSQL: set DATABASE_URL")
    generated = _generate(args.profiles, args.events)
    cases = _cases(timezone.now())
    out: dict[str, Any] = {"generate_s": {k: round(v, 2) for k, v in generated.items()}}
    for name, (runner, scan) in cases.items():
        runner()  # warm-up: plans, caches
        scan()
        runner_s, scan_s = [], []
        for _ in range(args.repeats):  # interleaved
            runner_s.append(_timed(runner))
            scan_s.append(_timed(scan))
        runner_ms = statistics.median(runner_s) * 1000
        scan_ms = statistics.median(scan_s) * 1000
        ratio = runner_ms / scan_ms
        limit = LIMITS[name]
        out[name] = {
            "runner_ms": round(runner_ms, 1),
            "scan_ms": round(scan_ms, 1),
            "ratio": round(ratio, 2),
            "limit": limit,
            "ok": limit is None or ratio <= limit,
        }
    out["ok"] = all(out[name]["ok"] for name in cases)
    return out


def report(result: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"insights (postgresql): {args.profiles:,} profiles / {args.events:,} events, "
        f"medians of {args.repeats}"
    ]
    for name in ("trends", "funnel", "retention", "paths"):
        r = result[name]
        verdict = "reported" if r["limit"] is None else ("OK" if r["ok"] else "TOO SLOW")
        limit = f" (limit {r['limit']})" if r["limit"] else ""
        lines.append(
            f"  {name:<10} runner {r['runner_ms']:9.1f} ms, scan {r['scan_ms']:9.1f} ms, "
            f"ratio {r['ratio']:.2f}{limit} -> {verdict}"
        )
    lines.append(f"  data generated in (s): {result['generate_s']}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    connection = django_setup()
    if connection.vendor != "postgresql":
        print("insights: skipped, the benchmark needs PostgreSQL (set DATABASE_URL)")
        return 0
    with throwaway_database("bench_insights"):
        result = run(args)
    print(report(result, args))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
