"""RudderStack's own SDKs, installed from the package registries and unmodified, against a live
server: rudder-sdk-python (PyPI) and @rudderstack/rudder-sdk-node (npm, with its defaults: gzip
on, its HTTP client declaring the gzipped body a form)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from rudderstack.analytics import Client
from rudderstack.analytics.request import APIError

from apps.events import services as event_services
from apps.events.models import Event
from apps.profiles import selectors as profile_selectors
from apps.profiles.models import Group
from apps.sources import services as source_services

NODE_DIR = Path(__file__).resolve().parent.parent / "sdk" / "node"


def _wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _assert_one_person(run: str) -> None:
    """identify linked the anonymous id, alias the legacy id: one identified profile with the
    identify traits, member of the group."""
    # On the embedded default (SQLite) concurrent requests can find the table locked while
    # queueing their processing: the outbox's periodic redispatch picks those up, run here.
    event_services.events_redispatch_unprocessed(older_than=timedelta(0))
    assert _wait_for(lambda: not Event.objects.filter(processed_at__isnull=True).exists())
    profile = profile_selectors.profile_get_for_distinct_id(f"user-{run}")
    assert profile is not None
    assert profile.identified
    assert profile_selectors.profile_get_for_distinct_id(f"anon-{run}") == profile
    assert profile_selectors.profile_get_for_distinct_id(f"legacy-{run}") == profile
    assert profile.traits["plan"] == "pro"
    assert profile.traits["seats"] == 3
    group = Group.objects.get(group_id=f"acme-{run}")
    assert group.properties == {"tier": "gold"}
    assert group.members.filter(pk=profile.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_rudder_sdk_python_track_identify_page_group_alias(live_server):
    source = source_services.source_create(name="Backend")
    errors = []
    # Its defaults: a background thread sends batches (gzipped); flush() waits for them.
    client = Client(
        write_key=source.write_key,
        host=live_server.url,
        on_error=lambda error, batch: errors.append(error),
    )

    client.page(
        anonymous_id="anon-py",
        name="Pricing",
        properties={"url": "https://shop.example/pricing", "title": "Pricing"},
    )
    client.track(anonymous_id="anon-py", event="Order Completed", properties={"revenue": 42.5})
    client.identify(user_id="user-py", anonymous_id="anon-py", traits={"plan": "pro", "seats": 3})
    client.group(user_id="user-py", group_id="acme-py", traits={"tier": "gold"})
    client.alias(previous_id="legacy-py", user_id="user-py")
    for index in range(200):
        client.track(user_id="user-py", event="Item Viewed", properties={"index": index})
    client.shutdown()  # flushes the queue, then ends the sending thread

    assert errors == []
    names = Counter(Event.objects.values_list("event_name", flat=True))
    assert names == {
        "page_view": 1,
        "Order Completed": 1,
        "$identify": 1,
        "$group": 1,
        "$create_alias": 1,
        "Item Viewed": 200,
    }
    indexes = set(
        Event.objects.filter(event_name="Item Viewed").values_list("properties__index", flat=True)
    )
    assert indexes == set(range(200))
    order = Event.objects.get(event_name="Order Completed")
    assert order.properties == {"revenue": 42.5}
    assert order.context["library"]["name"] == "analytics-python"
    assert order.context["channel"] == "server"
    page = Event.objects.get(event_name="page_view")
    assert page.context["page"]["url"] == "https://shop.example/pricing"
    _assert_one_person("py")


@pytest.mark.django_db(transaction=True)
def test_rudder_sdk_python_reports_a_bad_write_key(live_server):
    client = Client(write_key="wrong", host=live_server.url, sync_mode=True, max_retries=0)

    with pytest.raises(APIError) as raised:
        client.track(user_id="user-1", event="Signed Up")

    assert raised.value.status == 401
    assert "write key" in raised.value.message.lower()
    assert not Event.objects.exists()


def _node_sdk() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed: the Node SDK test needs them")
    if not (NODE_DIR / "node_modules" / "@rudderstack" / "rudder-sdk-node").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300
        )
    return node


# The Node SDK sends its batches concurrently. On the embedded default's SQLite (one writer at a
# time) the overlapping writes of the live server's threads answer 503 and the SDK gives up
# after its retries: a concurrency limit of SQLite, not of the wire format, so this runs on
# PostgreSQL (CI runs it there).
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_rudder_sdk_node_with_its_defaults(live_server):
    node = _node_sdk()
    source = source_services.source_create(name="Node backend")

    done = subprocess.run(
        [node, "send.cjs", live_server.url, source.write_key, "node"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == {"errors": [], "calls": 205}, done.stderr
    names = Counter(Event.objects.values_list("event_name", flat=True))
    assert names == {
        "page_view": 1,
        "Order Completed": 1,
        "$identify": 1,
        "$group": 1,
        "$create_alias": 1,
        "Item Viewed": 200,
    }
    indexes = set(
        Event.objects.filter(event_name="Item Viewed").values_list("properties__index", flat=True)
    )
    assert indexes == set(range(200))
    order = Event.objects.get(event_name="Order Completed")
    assert order.context["library"]["name"] == "analytics-node"
    assert order.context["channel"] == "server"
    assert "nodeVersion" in order.context["_metadata"]
    _assert_one_person("node")


@pytest.mark.django_db(transaction=True)
def test_rudder_sdk_node_reports_a_bad_write_key(live_server):
    node = _node_sdk()

    done = subprocess.run(
        [node, "send.cjs", live_server.url, "wrong-key", "bad"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=180,
    )

    report = json.loads(done.stdout)
    assert report["errors"], done.stderr
    assert not Event.objects.exists()
