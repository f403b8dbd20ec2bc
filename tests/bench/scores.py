"""Benchmark: predictive scores over 100,000 profiles and 1,000,000 events: feature extraction
(SQL, as of now) and a full scoring run (features, the model, the 100,000 scores written),
against the set-wise recompute of a rule segment over the same data, in the same run; plus
how the scores are stored (rows keyed by (score, profile) against one JSON column per profile).

    DATABASE_URL=postgres://... python -m tests.bench.scores [--profiles 100000]
        [--events 1000000] [--repeats 5]

Runs in a throw-away database (<name>_bench_scores), never in the configured one. PostgreSQL
only: the data is generated in SQL (generate_series). Needs the ml extra (scikit-learn).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from tests.bench.common import django_setup, throwaway_database
from tests.bench.segments import FILTER_TEXT
from tests.bench.segments import _generate as generate_rows

NAME = "scores"

# As the segments benchmark's events, but activity is skewed (a person's share of the events
# grows with the square of a random draw), so that past behaviour predicts purchases.
_EVENTS_SQL = """
INSERT INTO events_event (source_id, message_id, event_name, distinct_id, category, timestamp,
                          received_at, properties, context, session_key, processed_at)
SELECT %(source)s::uuid, 'bench-' || i,
       CASE WHEN i %% 10 = 0 THEN 'purchase' WHEN i %% 10 < 6 THEN 'page_view' ELSE 'click' END,
       CASE WHEN p %% 5 = 1 AND i %% 3 = 0 THEN 'anon-' ELSE 'user-' END || p,
       'custom', t, t, jsonb_build_object('amount', i %% 97), '{}'::jsonb, '', %(now)s
FROM (
    SELECT i,
           1 + floor(%(profiles)s * power((hashint4(i) & 2147483647) / 2147483648.0, 2))::int AS p,
           %(now)s - ((hashint4(i * 7 + 1) & 2147483647) %% 5184000) * interval '1 second' AS t
    FROM generate_series(1, %(events)s) AS i
) AS g
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profiles", type=int, default=100_000, help="profiles to generate")
    parser.add_argument("--events", type=int, default=1_000_000, help="events to generate")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each step")


def _generate(profiles: int, events: int) -> dict[str, float]:
    """The segments benchmark's profiles and identities (everyone first seen 60 days ago),
    with this benchmark's events."""
    return generate_rows(profiles, events, events_sql=_EVENTS_SQL, source_name="bench scores")


def _timed(fn: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def _storage(definition_id: int) -> dict[str, Any]:
    """Size and write time of the 100k scores as rows keyed by (score, profile) (what is
    stored) against one jsonb object per profile (the alternative), in the same database."""
    from django.db import connection, transaction

    out: dict[str, Any] = {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size('segments_profilescore')")
        out["rows_bytes"] = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM segments_profilescore")
        out["rows"] = cursor.fetchone()[0]
        cursor.execute(
            "CREATE TABLE bench_json_scores (profile_id uuid PRIMARY KEY "
            "REFERENCES profiles_profile (id), scores jsonb NOT NULL DEFAULT '{}')"
        )
        cursor.execute("INSERT INTO bench_json_scores (profile_id) SELECT id FROM profiles_profile")
    rewrite_json = []
    for _ in range(3):
        with transaction.atomic(), connection.cursor() as cursor:
            started = time.perf_counter()
            # One score's new values into each profile's object (what a scoring run would do).
            cursor.execute(
                "UPDATE bench_json_scores j SET scores = j.scores || "
                "jsonb_build_object('purchase_14d', s.value) FROM segments_profilescore s "
                "WHERE s.profile_id = j.profile_id AND s.definition_id = %s",
                [definition_id],
            )
            rewrite_json.append(time.perf_counter() - started)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size('bench_json_scores')")
        out["json_bytes"] = cursor.fetchone()[0]
        cursor.execute("DROP TABLE bench_json_scores")
    out["json_rewrite_ms"] = round(statistics.median(rewrite_json) * 1000, 1)
    return out


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    if args is None:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args([])
    from django.db import connection
    from django.utils import timezone

    from apps.segments import services as segment_services
    from apps.segments.models import ScoreDefinition, VersionStatus
    from apps.segments.scoring import features
    from apps.segments.scoring import services as score_services
    from cdp.celery import app as celery_app

    if connection.vendor != "postgresql":
        raise SystemExit("The scores benchmark needs PostgreSQL: set DATABASE_URL")
    celery_app.conf.task_always_eager = True

    generated = _generate(args.profiles, args.events)
    definition = score_services.score_definition_create(
        name="purchase_14d", target_event="purchase", horizon_days=14, retrain_every_days=0
    )
    # Training: the task's work, run here (the request queues it after its commit; autocommit).
    version, train_s = _timed(
        lambda: score_services.score_train_request(definition=definition)  # trains, then scores
    )
    version.refresh_from_db()
    if version.status != VersionStatus.ACTIVE:
        raise RuntimeError(f"the model was not accepted: {version.status} {version.reason}")
    definition = ScoreDefinition.objects.select_related("active_version").get(pk=definition.pk)
    spec = features.FeatureSpec.from_dict(definition.active_version.feature_spec)

    rule = segment_services.segment_create(key="pro-buyers", name="Pro", filter_text=FILTER_TEXT)
    extract: list[float] = []
    scoring: list[float] = []
    recompute: list[float] = []
    recompute_scored: list[float] = []
    for _ in range(args.repeats):
        _, took = _timed(
            lambda: score_services._matrix(spec, as_of=timezone.now(), seen_before=False)
        )
        extract.append(took)
        count, took = _timed(lambda: score_services.score_apply(definition=definition))
        scoring.append(took)
        _, took = _timed(lambda: segment_services.segment_recompute(segment=rule))
        recompute.append(took)
    # A segment on the score (made after the timed scorings, which would recompute it).
    scored = segment_services.segment_create(
        key="likely-buyers", name="Likely", filter_text="scores.purchase_14d >= 0.5"
    )
    for _ in range(args.repeats):
        _, took = _timed(lambda: segment_services.segment_recompute(segment=scored))
        recompute_scored.append(took)
    storage = _storage(definition.pk)
    extract_ms = statistics.median(extract) * 1000
    scoring_ms = statistics.median(scoring) * 1000
    recompute_ms = statistics.median(recompute) * 1000
    rule.refresh_from_db()
    scored.refresh_from_db()
    return {
        "name": NAME,
        "profiles": args.profiles,
        "events": args.events,
        "generate_s": {k: round(v, 2) for k, v in generated.items()},
        "train_and_first_scoring_s": round(train_s, 1),
        "auc": version.metrics["auc"],
        "base_rate": version.metrics["base_rate"],
        "features": len(spec.columns()),
        "scored": count,
        "repeats": args.repeats,
        "extract_ms": [round(t * 1000) for t in extract],
        "scoring_ms": [round(t * 1000) for t in scoring],
        "recompute_ms": [round(t * 1000) for t in recompute],
        "recompute_scored_ms": [round(t * 1000) for t in recompute_scored],
        "extract_median_ms": round(extract_ms),
        "scoring_median_ms": round(scoring_ms),
        "recompute_median_ms": round(recompute_ms),
        "recompute_scored_median_ms": round(statistics.median(recompute_scored) * 1000),
        "rule_members": rule.member_count,
        "scored_members": scored.member_count,
        "extract_ratio": round(extract_ms / recompute_ms, 2),
        "scoring_ratio": round(scoring_ms / recompute_ms, 2),
        "storage": storage,
    }


def report(result: dict[str, Any]) -> str:
    storage = result["storage"]
    return (
        f"scores: {result['profiles']:,} profiles / {result['events']:,} events; model "
        f"AUC {result['auc']} (base rate {result['base_rate']}), {result['features']} features; "
        f"training + first scoring {result['train_and_first_scoring_s']} s\n"
        f"  feature extraction {result['extract_median_ms']} ms, scoring run "
        f"{result['scoring_median_ms']} ms ({result['scored']:,} scores written), rule segment "
        f"recompute {result['recompute_median_ms']} ms ({result['rule_members']:,} members), "
        f"score segment recompute {result['recompute_scored_median_ms']} ms "
        f"({result['scored_members']:,} members); medians of {result['repeats']}\n"
        f"  ratios to the rule segment's recompute: extraction {result['extract_ratio']}x, "
        f"scoring {result['scoring_ratio']}x\n"
        f"  storage of {storage['rows']:,} scores: rows {storage['rows_bytes'] / 1e6:.1f} MB, "
        f"a jsonb column per profile {storage['json_bytes'] / 1e6:.1f} MB "
        f"(rewriting one score in it: {storage['json_rewrite_ms']} ms)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    connection = django_setup()
    if connection.vendor != "postgresql":
        print("scores: skipped, the benchmark needs PostgreSQL (set DATABASE_URL)")
        return 0
    with throwaway_database("bench_scores"):
        result = run(args)
    print(report(result))
    print(f"data generated in (s): {result['generate_s']}")
    for name in ("extract_ms", "scoring_ms", "recompute_ms", "recompute_scored_ms"):
        print(f"{name}: {result[name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
