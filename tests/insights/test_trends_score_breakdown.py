"""Trends broken down by a predictive score: people grouped by the tenth of 0..1 their current
score falls in, those without one under "(none)"."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import TestCase

from apps.insights.queries import QueryError, TrendsQuery, run_trends
from apps.segments.models import ProfileScore
from apps.segments.scoring import services
from tests.factories import profile_of
from tests.segments.scoring_data import send_history

pytest.importorskip("sklearn", reason="the ml extra (pip install '.[ml]') runs these tests")


def test_trends_break_down_by_score_tenths(tracker: Any) -> None:
    history = send_history(tracker)
    definition = services.score_definition_create(
        name="purchase_14d", target_event="purchase", categorical_traits=["plan"]
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        version = services.score_train_request(definition=definition)
    version.refresh_from_db()
    # Seen once in a full run on SQLite, never alone: no score at all. Say why if it recurs.
    assert version.status == "active", (version.status, version.reason, version.metrics)
    scores = dict(ProfileScore.objects.values_list("profile_id", "value"))
    assert len(scores) == len(history.people), (version.scored_profiles, version.scored_at)
    # One person without a score (scored before they came): counted under "(none)".
    newcomer = profile_of(history.people[0])
    ProfileScore.objects.filter(profile=newcomer).delete()

    query = TrendsQuery.from_dict(
        {
            "series": [{"event": "signed_up", "math": "unique_people"}],
            "breakdown": {"type": "score", "key": "purchase_14d"},
            "date_from": (history.now - timedelta(days=61)).date().isoformat(),
            "date_to": history.now.date().isoformat(),
        }
    )
    result = run_trends(query)
    totals = {line.breakdown_value: line.total for line in result.lines}
    expected: dict[str, int] = {"": 1}
    for profile_id, value in scores.items():
        if profile_id == newcomer.pk:
            continue
        tenth = min(int(value * 10), 9)
        label = f"{tenth / 10:.1f}-{(tenth + 1) / 10:.1f}"
        expected[label] = expected.get(label, 0) + 1
    # The top ten values are kept, the rest folded into "$other".
    if len(expected) > 10:
        assert sum(totals.values()) == len(history.people)
        assert all(totals[k] == v for k, v in expected.items() if k in totals)
    else:
        assert totals == expected
    assert len(expected) > 2  # the scores spread over several tenths


def test_a_score_breakdown_needs_a_score_name(db: None) -> None:
    with pytest.raises(QueryError):
        TrendsQuery.from_dict({"series": [{"event": "signed_up"}], "breakdown": {"type": "score"}})
