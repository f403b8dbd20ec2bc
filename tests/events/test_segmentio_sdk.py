"""Segment's official Python SDK, installed from PyPI, works unmodified against this server."""

from __future__ import annotations

import time

import pytest
from segment.analytics import Client
from segment.analytics.request import APIError

from apps.events.models import Event
from apps.profiles import selectors as profile_selectors
from apps.profiles.models import Group
from apps.sources import services as source_services


def _wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("gzip", [False, True])
def test_official_sdk_track_identify_group_alias(live_server, gzip):
    source = source_services.source_create(name="Backend")
    errors = []
    client = Client(
        write_key=source.write_key,
        host=live_server.url,
        gzip=gzip,
        sync_mode=True,  # send at once, in this thread: failures surface in on_error
        on_error=lambda error, batch: errors.append(error),
    )

    client.track(
        "anon-7",
        "Order Completed",
        {"revenue": 42.5, "url": "https://shop/x"},
        anonymous_id="anon-7",
    )
    client.page(
        anonymous_id="anon-7",
        name="Pricing",
        properties={"url": "https://shop.example/pricing", "title": "Pricing"},
    )
    client.identify("user-7", {"plan": "pro", "email": "Ann@Example.com"}, anonymous_id="anon-7")
    client.group("user-7", "acme", {"tier": "gold"})
    client.alias("legacy-7", "user-7")
    client.flush()

    assert errors == []
    names = set(Event.objects.values_list("event_name", flat=True))
    assert {"Order Completed", "page_view", "$identify", "$group", "$create_alias"} <= names
    order = Event.objects.get(event_name="Order Completed")
    assert order.properties == {"revenue": 42.5, "url": "https://shop/x"}
    assert order.context["library"]["name"] == "analytics-python"
    page = Event.objects.get(event_name="page_view")
    assert page.context["page"]["url"] == "https://shop.example/pricing"
    assert page.properties["page_name"] == "Pricing"

    assert _wait_for(lambda: not Event.objects.filter(processed_at__isnull=True).exists())
    profile = profile_selectors.profile_get_for_distinct_id("user-7")
    assert profile is not None
    # identify linked the anonymous id, alias added the legacy id: one person
    assert profile_selectors.profile_get_for_distinct_id("anon-7") == profile
    assert profile_selectors.profile_get_for_distinct_id("legacy-7") == profile
    assert profile.identified
    assert profile.traits["plan"] == "pro"
    assert profile.private_traits["email"] == "Ann@Example.com"
    group = Group.objects.get(group_id="acme")
    assert group.properties == {"tier": "gold"}
    assert group.members.filter(pk=profile.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_official_sdk_reports_a_bad_write_key(live_server):
    client = Client(write_key="wrong", host=live_server.url, sync_mode=True, max_retries=0)

    with pytest.raises(APIError) as raised:
        client.track("user-1", "Signed Up")

    assert raised.value.status == 401
    assert raised.value.code == "unauthorized"
    assert "write key" in raised.value.message.lower()
    assert not Event.objects.exists()
