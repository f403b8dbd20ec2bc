"""No page issues a query per row: the same number of queries for few rows as for many."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from apps.insights.models import Dashboard, DashboardItem, SavedInsight
from apps.profiles.models import Profile
from apps.segments import services as segment_services
from apps.segments.models import Segment


def queries(client: Any, url: str) -> int:
    cache.clear()  # cached figures would hide the queries of the second measure
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
        if response.streaming:
            b"".join(response.streaming_content)
    assert response.status_code == 200, url
    return len(captured.captured_queries)


def send(tracker: Any, people: range) -> None:
    batch = []
    for n in people:
        batch += [
            {"event_name": "page_view", "distinct_id": f"p{n}", "properties": {"path": "/"}},
            {"event_name": "signed_up", "distinct_id": f"p{n}"},
        ]
    tracker.post({"batch": batch})


def grow_and_count(client: Any, tracker: Any, url: str) -> tuple[int, int]:
    send(tracker, range(0, 3))
    few = queries(client, url)
    send(tracker, range(3, 30))
    return few, queries(client, url)


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/live/",
        "/people/",
        "/people/?q=p1",
        "/people/?format=csv",
        "/segments/",
        "/segments/everyone/",
        "/segments/everyone/?format=csv",
        "/insights/funnel/people/?step=page_view&step=signed_up&at_step=1",
        "/insights/retention/people/?start_event=page_view&return_event=*&cohort=0&at_period=0",
    ],
)
def test_pages_with_many_rows_issue_as_many_queries_as_with_few(
    marketer_client, tracker, url, settings
):
    with TestCase.captureOnCommitCallbacks(execute=True):
        segment_services.segment_create(
            key="everyone", name="Everyone", filter_text="event_count greater_than 0"
        )
    few, many = grow_and_count(marketer_client, tracker, url)
    assert Profile.objects.count() == 30
    assert many == few, f"{url}: {few} queries for 3 people, {many} for 30"


def test_lists_of_saved_insights_and_dashboards_do_not_grow_with_rows(marketer_client, marketer):
    def make(n: int) -> None:
        for i in range(n):
            saved = SavedInsight.objects.create(
                name=f"i{i}", kind="trends", owner=marketer, query={"series": [{"event": "x"}]}
            )
            dashboard = Dashboard.objects.create(name=f"d{i}", owner=marketer)
            DashboardItem.objects.create(dashboard=dashboard, insight=saved)

    make(2)
    few = (queries(marketer_client, "/saved/"), queries(marketer_client, "/dashboards/"))
    make(20)
    many = (queries(marketer_client, "/saved/"), queries(marketer_client, "/dashboards/"))
    assert few == many
    assert Segment.objects.count() == 0
