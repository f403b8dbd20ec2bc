"""The periodic recompute: set-wise (a fixed number of statements whatever the number of
profiles), keeps time-based conditions true, emits the entries and exits, leaves real-time
changes newer than itself alone; the beat task, the Celery task and the command."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.segments import services, tasks
from apps.segments.models import Segment, SegmentMembership
from cdp.celery import app as celery_app
from cdp.queues import queue_of
from tests.factories import BUYER, PRO, members, segment_events


def _buyer(people, distinct_id, days_ago, plan="pro"):
    people.people(distinct_id, set={"plan": plan})
    people.track(distinct_id, "purchase", days_ago=days_ago)
    people.track(distinct_id, "purchase", days_ago=days_ago)


def _recompute(key, **kwargs):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return services.segment_recompute(segment=Segment.objects.get(key=key), **kwargs)


def test_time_passing_makes_members_leave(people, make_segment):
    _buyer(people, "recent", days_ago=5)
    _buyer(people, "older", days_ago=20)
    _buyer(people, "free", days_ago=1, plan="free")
    make_segment("pro-buyers", {"and": [PRO, BUYER]})
    assert members("pro-buyers") == {"recent", "older"}

    # 15 days later the older purchases are 35 days old: outside "within_days 30".
    result = _recompute("pro-buyers", now=timezone.now() + timedelta(days=15))

    assert (result.entered, result.exited, result.members) == (0, 1, 1)
    assert members("pro-buyers") == {"recent"}
    [exited] = segment_events("segment_exited", "pro-buyers")
    assert exited.distinct_id == "older"
    segment = Segment.objects.get(key="pro-buyers")
    assert segment.member_count == 1
    assert segment.last_computed_at is not None

    # Nothing changed since: nothing happens.
    again = _recompute("pro-buyers", now=timezone.now() + timedelta(days=15))
    assert (again.entered, again.exited, again.members) == (0, 0, 1)
    assert len(segment_events("segment_exited", "pro-buyers")) == 1


def test_not_performed_enters_people_as_time_passes(people, make_segment):
    people.track("lapsed", "purchase", days_ago=3)
    people.track("active", "purchase", days_ago=0)
    make_segment("lapsed", {"not_performed": "purchase", "within_days": 7})
    assert members("lapsed") == set()

    result = _recompute("lapsed", now=timezone.now() + timedelta(days=5))

    assert result.entered == 1
    assert members("lapsed") == {"lapsed"}
    [entered] = segment_events("segment_entered", "lapsed")
    assert entered.distinct_id == "lapsed"


def test_recompute_is_set_wise(people):
    """The same statements for 2 or 20 people: nothing loops over profiles."""

    def queries_for(count, key):
        for n in range(count):
            people.people(f"{key}-{n}", set={"plan": key})
        segment = Segment.objects.create(key=key, name=key, filter={**PRO, "value": key})
        with CaptureQueriesContext(connection) as captured:
            result = services.segment_recompute(segment=segment)
        assert result.entered == count
        SegmentMembership.objects.filter(segment=segment).delete()
        segment.delete()
        return len(captured)

    queries_for(1, "warm-up")  # creates the internal source events are emitted in
    small, large = queries_for(2, "small"), queries_for(20, "large")
    assert small == large


def test_real_time_changes_newer_than_the_recompute_are_kept(people, make_segment):
    people.people("x", set={"plan": "pro"})
    make_segment("pro", PRO)
    earlier = timezone.now() - timedelta(minutes=5)
    people.people("y", set={"plan": "pro"})  # entered in real time, after `earlier`

    # A recompute that started before y entered: its set can't know y yet, y stays.
    SegmentMembership.objects.filter(segment__key="pro").update(entered_at=timezone.now())
    _recompute("pro", now=earlier)

    assert members("pro") == {"x", "y"}


def test_recompute_all_orders_by_reference_and_recounts_static(people, make_segment):
    people.people("a", set={"plan": "pro"})
    make_segment("pro", PRO)
    make_segment("pro-too", {"in_segment": "pro"})
    make_segment("vip", kind="static")
    Segment.objects.filter(key="vip").update(member_count=7)  # drifted
    SegmentMembership.objects.all().delete()

    with TestCase.captureOnCommitCallbacks(execute=True):
        results = tasks.recompute_segments()

    assert [r["key"] for r in results] == ["pro", "pro-too"]
    assert members("pro") == members("pro-too") == {"a"}
    assert Segment.objects.get(key="vip").member_count == 0


def test_the_beat_schedule_runs_the_recompute_on_the_segments_queue():
    entry = settings.CELERY_BEAT_SCHEDULE["recompute-segments"]
    assert entry["task"] == "apps.segments.tasks.recompute_segments"
    assert entry["schedule"] <= 600
    assert queue_of("apps.segments.tasks.recompute_segments") == "segments"
    route = celery_app.amqp.router.route({}, "apps.segments.tasks.recompute_segments")
    assert route["queue"].name == "segments"


def test_the_command(people, make_segment, capsys):
    people.people("a", set={"plan": "pro"})
    make_segment("pro", PRO)
    SegmentMembership.objects.all().delete()

    call_command("recompute_segments", "pro", verbosity=0)

    assert members("pro") == {"a"}
    with pytest.raises(CommandError, match="nope"):
        call_command("recompute_segments", "nope", verbosity=0)


def test_static_segments_are_not_recomputed(make_segment):
    segment = make_segment("vip", kind="static")
    with pytest.raises(Exception, match="static"):
        services.segment_recompute(segment=segment)
