"""The first-party Python SDK (sdk/python, installed into the venv) against a live server:
every call lands as the server stores it; failures on the way lose and duplicate nothing."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cdp_analytics import APIError, Client, ClientClosedError

from apps.events import services as event_services
from apps.events.models import Event
from apps.profiles import selectors as profile_selectors
from apps.profiles.models import Group
from apps.sources import services as source_services
from tests.sdk.proxy import FaultyProxy

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# Retries in these tests wait milliseconds, not seconds (except where Retry-After is tested).
FAST_RETRIES = {"backoff_base": 0.01, "backoff_max": 0.05}


def _wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _processed() -> bool:
    # On SQLite, a request can find the table locked while queueing its processing: the
    # outbox's periodic redispatch picks those up, run here.
    event_services.events_redispatch_unprocessed(older_than=timedelta(0))
    return _wait_for(lambda: not Event.objects.filter(processed_at__isnull=True).exists())


@pytest.fixture
def write_key(transactional_db) -> str:
    return source_services.source_create(name="Backend").write_key


@pytest.mark.django_db(transaction=True)
def test_every_call_lands_as_the_server_stores_it(live_server, write_key):
    errors = []
    client = Client(write_key, live_server.url, on_error=lambda e, p: errors.append(e))
    when = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)

    order_id = client.track(
        "anon-1",
        "order_completed",
        {"revenue": 42.5, "items": ["sku-1", "sku-2"], "paid_at": when},
        category="commerce",
        timestamp=when,
        context={"ip": "203.0.113.9", "campaign": {"source": "ads"}},
        groups={"company": "acme"},
    )
    identify_id = client.identify(
        "user-1",
        {"plan": "pro"},
        private_traits={"email": "ann@example.com"},
        anonymous_id="anon-1",
    )
    client.alias("user-1", "crm-981")
    user = client.for_user("user-1")
    bound_id = user.track("report_exported", {"format": "csv"})
    assert client.flush(timeout=30)
    assert _processed()

    order = Event.objects.get(message_id=order_id)
    assert (order.event_name, order.distinct_id, order.category) == (
        "order_completed",
        "anon-1",
        "commerce",
    )
    assert order.properties == {
        "revenue": 42.5,
        "items": ["sku-1", "sku-2"],
        "paid_at": "2026-03-01T12:30:00+00:00",
        "$groups": {"company": "acme"},
    }
    # The server corrects the host's clock by sent_at: the time it happened, plus the time
    # the request took to arrive.
    assert when <= order.timestamp < when + timedelta(seconds=30)
    assert order.context["campaign"] == {"source": "ads"}
    assert order.context["ip"] == "203.0.113.9"
    assert order.context["library"] == {"name": "cdp-analytics-python", "version": "0.1.0"}
    assert Event.objects.get(message_id=identify_id).event_name == "$identify"
    assert Event.objects.get(message_id=bound_id).distinct_id == "user-1"

    profile = profile_selectors.profile_get_for_distinct_id("user-1")
    assert profile is not None
    assert profile.identified
    assert profile_selectors.profile_get_for_distinct_id("anon-1") == profile
    assert profile_selectors.profile_get_for_distinct_id("crm-981") == profile
    assert profile.private_traits["email"] == "ann@example.com"

    client.people.set("user-1", {"plan": "team", "role": "admin"})
    client.people.set_once("user-1", {"plan": "free", "signup_source": "ads"})
    client.people.increment("user-1", {"logins": 2})
    user.people.increment({"logins": 1})
    user.people.append({"purchases": "sku-1"})
    user.people.union({"tags": ["beta", "vip"]})
    user.people.union({"tags": ["vip", "early"]})
    user.people.unset(["role"])
    user.group("company", "acme", {"tier": "gold"})
    client.group_update("company", "acme", set_once={"founded": 2001})
    assert client.shutdown(timeout=30)

    profile.refresh_from_db()
    assert {k: profile.traits.get(k) for k in ("plan", "signup_source", "logins", "role")} == {
        "plan": "team",
        "signup_source": "ads",
        "logins": 3,
        "role": None,
    }
    assert profile.traits["purchases"] == ["sku-1"]
    assert profile.traits["tags"] == ["beta", "vip", "early"]
    group = Group.objects.get(group_id="acme")
    assert group.properties == {"tier": "gold", "founded": 2001}
    assert group.members.filter(pk=profile.pk).exists()

    stats = client.stats()
    assert errors == []
    assert (stats.delivered, stats.failed, stats.dropped, stats.queued) == (15, 0, 0, 0)


@pytest.mark.django_db(transaction=True)
def test_sync_mode_sends_before_returning_and_raises_refusals(live_server, write_key):
    client = Client(write_key, live_server.url, sync_mode=True)
    message_id = client.track("user-2", "signed_up", {"plan": "pro"})
    assert Event.objects.filter(message_id=message_id, distinct_id="user-2").exists()

    client.shutdown()
    with pytest.raises(ClientClosedError):
        client.track("user-2", "too_late")

    wrong = Client("not-a-key", live_server.url, sync_mode=True, **FAST_RETRIES)
    with pytest.raises(APIError) as raised:
        wrong.track("user-2", "refused")
    assert raised.value.status == 401
    assert raised.value.code == "unauthorized"
    assert "write key" in str(raised.value).lower()
    # A refusal is final: not retried.
    assert wrong.stats().retries == 0
    assert wrong.stats().failed == 1
    assert not Event.objects.filter(event_name="refused").exists()
    wrong.shutdown()


@pytest.mark.django_db(transaction=True)
def test_background_refusal_goes_to_on_error_and_the_log(live_server, caplog):
    errors = []

    def on_error(error, payloads):
        errors.append((error, payloads))
        client.flush()  # would wait forever on the thread that sends: refused, and logged

    client = Client("not-a-key", live_server.url, on_error=on_error, **FAST_RETRIES)
    with caplog.at_level(logging.ERROR, logger="cdp_analytics"):
        client.track("user-3", "refused", {"n": 1})
        assert client.flush(timeout=30)
    assert "flush() can't be called from on_error" in caplog.text
    [(error, payloads)] = errors
    assert error.status == 401
    assert [p["event_name"] for p in payloads] == ["refused"]
    assert "not delivered" in caplog.text
    assert client.stats().failed == 1
    client.shutdown()


@pytest.mark.django_db(transaction=True)
def test_a_server_failing_then_answering_loses_and_duplicates_nothing(live_server, write_key):
    faults = [
        "503",  # down: nothing reached the server
        "forward_then_503",  # stored, but the answer was lost: the retry is a duplicate
        "forward_then_drop",  # stored, then the connection dropped
        "429",
    ]
    with FaultyProxy(live_server.url, faults) as proxy:
        client = Client(write_key, proxy.url, batch_size=20, **FAST_RETRIES)
        sent = [client.track(f"user-{n % 7}", "page_viewed", {"n": n}) for n in range(60)]
        sent.append(client.identify("user-1", {"plan": "pro"}, anonymous_id="anon-9"))
        sent.append(client.alias("user-1", "legacy-1"))
        assert client.shutdown(timeout=60)

    stored = list(Event.objects.values_list("message_id", flat=True))
    assert sorted(stored) == sorted(sent)  # each call once: none lost, none twice
    assert sorted(
        Event.objects.filter(event_name="page_viewed").values_list("properties__n", flat=True)
    ) == list(range(60))
    stats = client.stats()
    assert stats.retries == len(faults)
    # The first batch of 20 was stored twice over before its answer arrived: the successful
    # retry's answer counts them as duplicates.
    assert stats.duplicates == 20
    assert (stats.delivered, stats.failed, stats.dropped) == (len(sent), 0, 0)
    # Batches went gzipped.
    batches = [r for r in proxy.requests if r["path"] == "/api/track"]
    assert len(batches) == 3 + len(faults)
    assert all(r["headers"].get("Content-Encoding") == "gzip" for r in batches)


@pytest.mark.django_db(transaction=True)
def test_people_and_groups_survive_a_down_server(live_server, write_key):
    """People and group operations apply at once: a 503 that reached nothing is retried and
    applied once."""
    with FaultyProxy(live_server.url, ["503", "503", "429", "503"]) as proxy:
        client = Client(write_key, proxy.url, **FAST_RETRIES)
        client.people.increment("user-5", {"logins": 1})
        client.group("user-5", "company", "initech", {"tier": "silver"})
        client.people.union("user-5", {"tags": ["a"]})
        assert client.shutdown(timeout=60)
    assert [r["fault"] for r in proxy.requests].count("pass") == 4
    profile = profile_selectors.profile_get_for_distinct_id("user-5")
    assert profile.traits == {"logins": 1, "tags": ["a"]}
    group = Group.objects.get(group_id="initech")
    assert group.properties == {"tier": "silver"}
    assert group.members.filter(pk=profile.pk).exists()
    assert client.stats().retries == 4


@pytest.mark.django_db(transaction=True)
def test_people_and_group_operations_whose_answer_was_lost_apply_once(live_server, write_key):
    """Applied, then the answer lost (a 503 or a dropped connection after the server answered),
    four times over for the first call: each retry carries the same message id, so the server
    answers it as a duplicate instead of applying it again."""
    faults = ["forward_then_503", "forward_then_drop", "forward_then_503", "forward_then_503"]
    with FaultyProxy(live_server.url, faults) as proxy:
        client = Client(write_key, proxy.url, **FAST_RETRIES)
        client.people.increment("user-5", {"logins": 1})
        client.people.append("user-5", {"pages": "/a"})
        client.group("user-5", "company", "initech", {"tier": "silver"})
        assert client.shutdown(timeout=60)
    assert len(proxy.requests) == len(faults) + 4
    profile = profile_selectors.profile_get_for_distinct_id("user-5")
    assert profile.traits == {"logins": 1, "pages": ["/a"]}
    group = Group.objects.get(group_id="initech")
    assert group.properties == {"tier": "silver"}
    assert group.members.filter(pk=profile.pk).exists()
    stats = client.stats()
    # The retry that got through was answered as a duplicate.
    assert (stats.retries, stats.duplicates, stats.failed) == (4, 1, 0)


@pytest.mark.django_db(transaction=True)
def test_retry_after_is_honoured(live_server, write_key):
    with FaultyProxy(live_server.url, ["503"], retry_after="1") as proxy:
        client = Client(write_key, proxy.url, sync_mode=True, **FAST_RETRIES)
        client.track("user-6", "exported")
        client.shutdown()
    first, second = proxy.requests
    # The backoff alone would have waited at most 0.05 s.
    assert second["at"] - first["at"] >= 1.0
    assert Event.objects.filter(distinct_id="user-6").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_closed_while_idle_is_not_an_error(live_server, write_key):
    with FaultyProxy(live_server.url, close_idle=True) as proxy:
        client = Client(write_key, proxy.url, sync_mode=True, **FAST_RETRIES)
        for n in range(3):
            client.track("user-12", "polled", {"n": n})
            # The server has closed the kept-alive connection before the next call.
            assert _wait_for(lambda n=n: proxy.closed == n + 1)
        client.shutdown()
    assert client.stats().retries == 0
    assert Event.objects.filter(distinct_id="user-12").count() == 3


@pytest.mark.django_db(transaction=True)
def test_giving_up_after_max_retries_counts_a_failure(live_server, write_key):
    with FaultyProxy(live_server.url, ["503"] * 3) as proxy:
        client = Client(write_key, proxy.url, max_retries=2, sync_mode=True, **FAST_RETRIES)
        with pytest.raises(APIError) as raised:
            client.track("user-7", "lost")
        client.shutdown()
    assert raised.value.status == 503
    assert len(proxy.requests) == 3
    assert client.stats().failed == 1
    assert not Event.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_shutdown_flushes_what_is_queued(live_server, write_key):
    # Nothing would be sent for a minute, nor before 100 calls, without the shutdown.
    client = Client(write_key, live_server.url, flush_interval=60, batch_size=100)
    sent = [client.track("user-8", "step", {"n": n}) for n in range(10)]
    assert client.shutdown(timeout=30)
    assert sorted(Event.objects.values_list("message_id", flat=True)) == sorted(sent)
    with pytest.raises(ClientClosedError, match="shut down"):
        client.track("user-8", "after")


def _run_script(tmp_path, source: str, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(BASE_DIR)},
    )


@pytest.mark.django_db(transaction=True)
def test_exit_flushes_and_captures_an_uncaught_exception(live_server, write_key, tmp_path):
    result = _run_script(
        tmp_path,
        """
        import sys, threading
        from cdp_analytics import Client

        client = Client(sys.argv[1], sys.argv[2], flush_interval=60, capture_exceptions=True,
                        exception_distinct_id="billing-worker")
        for n in range(5):
            client.track("user-9", "invoice_sent", {"n": n})
        worker = threading.Thread(target=lambda: 1 / 0, name="exporter")
        worker.start()
        worker.join()
        raise RuntimeError("card processor unreachable")
        """,
        write_key,
        live_server.url,
    )
    assert result.returncode == 1
    assert "card processor unreachable" in result.stderr  # Python's own report still runs
    assert Event.objects.filter(event_name="invoice_sent").count() == 5
    in_thread = Event.objects.get(event_name="server_error", properties__thread="exporter")
    assert in_thread.properties["exception_type"] == "builtins.ZeroDivisionError"
    error = Event.objects.get(event_name="server_error", properties__thread="MainThread")
    assert (error.distinct_id, error.category) == ("billing-worker", "error")
    assert error.properties["exception_type"] == "builtins.RuntimeError"
    assert error.properties["exception_message"] == "card processor unreachable"
    assert error.properties["handled"] is False
    assert "raise RuntimeError" in error.properties["stacktrace"]


@pytest.mark.django_db(transaction=True)
def test_a_forked_child_sends_its_own_calls_once(live_server, write_key, tmp_path):
    """gunicorn --preload and Celery's prefork pool fork after the client is made: the child
    gets a consumer thread of its own, and what the parent had queued is sent once, by it."""
    result = _run_script(
        tmp_path,
        """
        import os, sys
        from cdp_analytics import Client

        client = Client(sys.argv[1], sys.argv[2], flush_interval=60)
        client.track("parent", "before_fork")
        pid = os.fork()
        if pid == 0:
            client.track("child", "in_child")
            sys.exit(0)  # the exit handler flushes the child's queue
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        client.track("parent", "after_fork")
        """,
        write_key,
        live_server.url,
    )
    assert result.returncode == 0, result.stderr
    names = sorted(Event.objects.values_list("event_name", flat=True))
    assert names == ["after_fork", "before_fork", "in_child"]


@pytest.mark.django_db(transaction=True)
def test_a_full_queue_drops_new_calls_and_counts_them(live_server, write_key, caplog):
    client = Client(write_key, live_server.url, flush_interval=60, max_queue_size=5)
    with caplog.at_level(logging.WARNING, logger="cdp_analytics"):
        kept = [client.track("user-10", "step", {"n": n}) for n in range(5)]
        for n in range(5, 15):
            client.track("user-10", "step", {"n": n})
    assert client.stats().dropped == 10
    assert "queue full" in caplog.text
    assert client.shutdown(timeout=30)
    assert sorted(Event.objects.values_list("message_id", flat=True)) == sorted(kept)
    stats = client.stats()
    assert (stats.delivered, stats.dropped, stats.queued) == (5, 10, 0)


@pytest.mark.django_db(transaction=True)
def test_capture_exception_sends_the_handled_exception(live_server, write_key):
    client = Client(write_key, live_server.url, sync_mode=True)
    try:
        {}["missing"]
    except KeyError:
        message_id = client.for_user("user-11").capture_exception(properties={"job": "sync"})
    event = Event.objects.get(message_id=message_id)
    assert (event.event_name, event.distinct_id) == ("server_error", "user-11")
    assert event.properties["exception_type"] == "builtins.KeyError"
    assert event.properties["handled"] is True
    assert event.properties["job"] == "sync"
    with pytest.raises(ValueError, match="no exception"):
        client.capture_exception()
    client.shutdown()


class _Opaque:
    pass


BAD_CALLS = [
    (lambda c: c.track("", "x"), ValueError, "distinct_id must not be empty"),
    (lambda c: c.track(None, "x"), TypeError, "distinct_id must be a string"),
    (lambda c: c.track("undefined", "x"), ValueError, "placeholder"),
    (lambda c: c.track("u" * 201, "x"), ValueError, "limit is 200"),
    (lambda c: c.track("user-1", "  "), ValueError, "event_name must not be empty"),
    (lambda c: c.track("user-1", 5), TypeError, "event_name must be a string"),
    (lambda c: c.track("user-1", "x", ["a"]), TypeError, "properties must be a dict"),
    (lambda c: c.track("user-1", "x", {1: "a"}), TypeError, "properties keys must be strings"),
    (
        lambda c: c.track("user-1", "x", {"o": _Opaque()}),
        TypeError,
        "properties: a value of type _Opaque",
    ),
    (lambda c: c.track("user-1", "x", {"n": float("nan")}), ValueError, "properties"),
    (lambda c: c.track("user-1", "x", {"big": "x" * 40000}), ValueError, "limit is 32768"),
    (lambda c: c.track("user-1", "x", category=""), ValueError, "category must not be empty"),
    (
        lambda c: c.track("user-1", "x", timestamp="2026-01-01"),
        TypeError,
        "timestamp must be a datetime",
    ),
    (
        lambda c: c.track("user-1", "x", timestamp=datetime(2026, 1, 1)),
        ValueError,
        "timezone-aware",
    ),
    (lambda c: c.track("user-1", "x", groups={"Company!": "a"}), ValueError, "group_key"),
    (
        lambda c: c.identify("user-1", anonymous_id="null"),
        ValueError,
        "anonymous_id 'null' is a placeholder",
    ),
    (lambda c: c.identify("user-1", "pro"), TypeError, "traits must be a dict"),
    (lambda c: c.alias("user-1", ""), ValueError, "alias must not be empty"),
    (lambda c: c.people.set("user-1", {}), ValueError, "traits must name at least one"),
    (
        lambda c: c.people.increment("user-1", {"logins": "1"}),
        TypeError,
        "increment['logins'] must be a number",
    ),
    (lambda c: c.people.increment("user-1", {"logins": True}), TypeError, "must be a number"),
    (lambda c: c.people.unset("user-1", "plan"), TypeError, "list of trait names"),
    (
        lambda c: c.people.union("user-1", {"tags": "beta"}),
        TypeError,
        "union['tags'] must be a list",
    ),
    (lambda c: c.people.update("user-1"), ValueError, "no people operation"),
    (lambda c: c.group("user-1", "company", ""), ValueError, "group_id must not be empty"),
    (lambda c: c.group("user-1", "company", "acme", action="join"), ValueError, "action must be"),
    (lambda c: c.group_update("company", "acme"), ValueError, "no group property operation"),
    (lambda c: c.for_user("none"), ValueError, "placeholder"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("call", "error", "message"), BAD_CALLS)
def test_bad_arguments_raise_at_call_time(live_server, write_key, call, error, message):
    client = Client(write_key, live_server.url)
    with pytest.raises(error, match=message.replace("[", r"\[").replace("]", r"\]")):
        call(client)
    assert client.stats().queued == 0
    assert client.shutdown(timeout=30)
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"host": "cdp.example.com"}, ValueError, "host must be an http"),
        ({"write_key": " "}, ValueError, "write_key"),
        ({"batch_size": 0}, ValueError, "batch_size must be more than zero"),
        ({"batch_size": 5000}, ValueError, "at most 1000"),
        ({"max_queue_size": "10"}, TypeError, "max_queue_size must be a number"),
        ({"max_retries": -1}, ValueError, "max_retries must be zero or more"),
        ({"on_error": "log"}, TypeError, "on_error must be a function"),
    ],
)
def test_bad_client_options_raise(options, error, message):
    arguments = {"write_key": "key", "host": "http://127.0.0.1:9", **options}
    with pytest.raises(error, match=message):
        Client(**arguments)


def test_retry_after_is_read_as_seconds_or_an_http_date():
    from email.utils import format_datetime

    from cdp_analytics.transport import RetryPolicy, parse_retry_after

    assert parse_retry_after("5") == 5.0
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 55 <= parse_retry_after(in_a_minute) <= 60
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    policy = RetryPolicy(backoff_base=0.5, backoff_max=30.0, retry_after_max=120.0)
    # Backoff doubles up to its ceiling, with jitter in its upper half.
    assert 0.25 <= policy.delay(0, None) <= 0.5
    assert 15.0 <= policy.delay(10, None) <= 30.0
    # Retry-After wins when longer, up to its own ceiling.
    assert policy.delay(0, 7.0) == 7.0
    assert policy.delay(0, 3600.0) == 120.0
