"""The ingest benchmark's baseline (tests/bench/ingest.py): COPY of the same rows the API
stores. The benchmark itself is too long for the suite; its baseline must not drift from the
events table (a column added to the table once broke it unnoticed)."""

from __future__ import annotations

import pytest

from apps.events.models import Event
from apps.events.storage import _COLUMNS
from apps.sources.models import EventSource
from tests.bench.ingest import _copy, _copy_rows, make_events


def test_the_copy_baseline_writes_every_column_the_api_writes(source: EventSource) -> None:
    rows = _copy_rows(make_events(3, run="t"), str(source.pk))
    assert [len(row) for row in rows] == [len(_COLUMNS)] * 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_copy_baseline_stores_its_rows(source: EventSource) -> None:
    events = make_events(5, run="t")
    _copy(_copy_rows(events, str(source.pk)), batch_size=2)
    stored = Event.objects.filter(source=source)
    assert sorted(stored.values_list("message_id", flat=True)) == sorted(
        e["message_id"] for e in events
    )
    assert not stored.filter(platform=True).exists()
