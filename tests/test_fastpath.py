"""The tracking fast path (cdp/fastpath.py): tracking endpoints skip the browser middleware
but keep what every response of the project has, and nothing else changes path."""

from __future__ import annotations

import io
from typing import Any
from wsgiref.util import setup_testing_defaults

import orjson
import pytest
from django.core.signals import request_started
from django.db import OperationalError, connection
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import get_resolver

from apps.events.models import Event
from apps.sources.models import EventSource
from cdp.fastpath import TRACKING_URLCONF, TrackingFastPathMiddleware
from cdp.shared_version import forget_all
from tests.clients import TrackingClient
from tests.events.track_helpers import event, ok

pytestmark = pytest.mark.django_db


def test_every_tracking_endpoint_is_served_by_the_fast_path_and_nothing_else_is() -> None:
    fast = {p.name for p in get_resolver(TRACKING_URLCONF).url_patterns}
    assert {"track", "segmentio-batch", "identify", "people", "consent"} <= fast
    assert not fast & {"healthz", "readyz", "login", "schema"}
    middleware = TrackingFastPathMiddleware(lambda request: HttpResponse("full stack"))
    factory = RequestFactory()
    for path in ("/healthz", "/api/v1/events/", "/admin/", "/", "/api/trackx"):
        assert middleware(factory.get(path)).content == b"full stack", path


def test_tracking_answers_keep_the_security_headers(source: EventSource) -> None:
    response = TrackingClient(Client(), source.write_key).post(event(message_id="m1"))
    ok(response)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in response  # no session, no CSRF cookie: a machine's request


def test_a_host_that_is_not_allowed_is_refused_on_tracking_endpoints_too(
    source: EventSource, settings: Any
) -> None:
    settings.ALLOWED_HOSTS = ["cdp.example.com"]
    client = TrackingClient(Client(HTTP_HOST="attacker.example"), source.write_key)
    assert client.post(event(message_id="m1")).status_code == 400
    assert not Event.objects.exists()
    allowed = TrackingClient(Client(HTTP_HOST="cdp.example.com"), source.write_key)
    ok(allowed.post(event(message_id="m2")))


def test_an_error_raised_past_the_view_answers_like_everywhere_else(
    source: EventSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The project's handler500 answers what a tracking view did not: a database that is down
    is a 503 with Retry-After (SDKs retry), a bug a 500, never a crashed worker."""

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    # Raised where the tracking decorator does not catch it (answering CORS).
    monkeypatch.setattr("apps.events.tracking.with_cors", down)
    client = TrackingClient(Client(raise_request_exception=False), source.write_key)
    response = client.post(event(message_id="m1"))
    assert response.status_code == 503
    assert response["Retry-After"]
    monkeypatch.undo()

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("apps.events.tracking.envelope_for", bug)
    assert client.post(event(message_id="m2")).status_code == 500
    assert not Event.objects.filter(message_id="m2").exists()


def test_pages_and_the_api_still_go_through_the_whole_stack(client: Client) -> None:
    login = client.get("/login/")
    assert login.status_code == 200
    assert login["X-Frame-Options"] == "DENY"  # clickjacking middleware
    assert "csrftoken" in login.cookies  # CSRF middleware
    assert client.get("/api/v1/events/").status_code in (401, 403)  # authentication


# --- in production: served before Django's WSGI handler (cdp/wsgi.py) --------------------------


@pytest.fixture
def wsgi() -> Any:
    from cdp.wsgi import application

    def call(method: str, path: str, body: bytes = b"", **headers: str) -> tuple[str, dict, bytes]:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "HTTP_HOST": "testserver",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            **headers,
        }
        setup_testing_defaults(environ)
        answer: dict[str, Any] = {}

        def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
            answer["status"], answer["headers"] = status, dict(response_headers)

        content = b"".join(application(environ, start_response))
        return answer["status"], answer["headers"], content

    return call


@pytest.fixture
def handled_by_django() -> Any:
    """The paths Django's own handler served (it sends request_started for each)."""
    paths: list[str] = []

    def record(sender: Any, environ: dict[str, Any], **kwargs: Any) -> None:
        paths.append(environ["PATH_INFO"])

    request_started.connect(record, weak=False)
    yield paths
    request_started.disconnect(record)


def _track(source: EventSource, message_id: str) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(event(message_id=message_id))
    return body, {"HTTP_X_WRITE_KEY": source.write_key}


@pytest.mark.django_db(transaction=True)
def test_gunicorn_serves_tracking_before_djangos_handler_and_the_rest_through_it(
    source: EventSource, wsgi: Any, handled_by_django: list[str]
) -> None:
    body, headers = _track(source, "w1")
    status, response_headers, content = wsgi("POST", "/api/track", body, **headers)
    assert status == "200 OK", content
    assert orjson.loads(content)["accepted"] == 1
    assert Event.objects.filter(message_id="w1").exists()
    assert response_headers["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware's
    assert response_headers["Content-Type"] == "application/json"
    assert "Set-Cookie" not in response_headers
    status, response_headers, _ = wsgi("OPTIONS", "/api/track", HTTP_ORIGIN="https://shop.example")
    assert status == "204 No Content"
    assert response_headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert handled_by_django == []

    status, _, content = wsgi("GET", "/healthz")
    assert status == "200 OK"
    status, response_headers, _ = wsgi("GET", "/login/")
    assert status == "200 OK"
    assert response_headers["X-Frame-Options"] == "DENY"  # the whole stack
    assert wsgi("GET", "/api/trackx")[0].startswith("404")
    assert handled_by_django == ["/healthz", "/login/", "/api/trackx"]


@pytest.mark.django_db(transaction=True)
def test_gunicorns_tracking_path_refuses_a_host_not_allowed(
    source: EventSource, wsgi: Any, settings: Any
) -> None:
    settings.ALLOWED_HOSTS = ["cdp.example.com"]
    body, headers = _track(source, "w1")
    status, _, _ = wsgi("POST", "/api/track", body, **headers)
    assert status.startswith("400")
    assert not Event.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_gunicorns_tracking_path_answers_errors_as_django_does(
    source: EventSource, wsgi: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    monkeypatch.setattr("apps.events.tracking.with_cors", down)  # past the view's own handling
    body, headers = _track(source, "w1")
    status, response_headers, _ = wsgi("POST", "/api/track", body, **headers)
    assert status.startswith("503")
    assert response_headers["Retry-After"]
    monkeypatch.undo()

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("apps.events.tracking.envelope_for", bug)
    body, headers = _track(source, "w2")
    assert wsgi("POST", "/api/track", body, **headers)[0].startswith("500")
    assert not Event.objects.filter(message_id="w2").exists()


@pytest.mark.django_db(transaction=True)
def test_gunicorns_tracking_path_releases_the_database_connection_it_used(
    source: EventSource, wsgi: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As at the end of any request: back to the pool, or closed past CONN_MAX_AGE (0 here),
    never kept by the thread for ever."""
    if connection.vendor == "sqlite":
        pytest.skip("Django never closes SQLite's in-memory test database")
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    connection.close()
    forget_all()  # the source is read from the database by the request itself
    body, headers = _track(source, "w1")
    assert wsgi("POST", "/api/track", body, **headers)[0] == "200 OK"
    assert connection.connection is None


@pytest.mark.django_db(transaction=True)
def test_gunicorns_tracking_path_sends_a_streamed_answer_whole(
    wsgi: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.http import StreamingHttpResponse
    from django.urls import ResolverMatch

    def streaming_view(request: Any) -> StreamingHttpResponse:
        return StreamingHttpResponse(iter([b"part one, ", b"part two"]))

    monkeypatch.setattr(
        "cdp.fastpath.TrackingRoutes.match",
        lambda self, path: ResolverMatch(streaming_view, (), {}),
    )
    status, _, content = wsgi("GET", "/api/track")
    assert (status, content) == ("200 OK", b"part one, part two")
