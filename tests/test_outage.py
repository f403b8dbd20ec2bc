"""A database outage: every kind of request answers 503 with Retry-After, quickly, instead of a
500 or a thread held for the pool timeout; /readyz says what is down.

The main test runs the real server (gunicorn) on a throwaway PostgreSQL server of its own
(initdb in a temporary directory, on a free port), then stops that server under it."""

from __future__ import annotations

import base64
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.db import OperationalError
from django.test import Client

BASE_DIR = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return str(Path(found[-1]).parent) if found else None


def _as_pg(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class ThrowawayPostgres:
    def __init__(self, bin_dir: str, root: Path) -> None:
        self.bin = bin_dir
        self.data = root / "data"
        self.port = _free_port()
        self.root = root

    def _run(self, *args: str) -> None:
        subprocess.run(
            _as_pg([f"{self.bin}/{args[0]}", *args[1:]]),
            check=True,
            timeout=120,
            capture_output=True,
        )

    def start(self) -> None:
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-U", "cdp", "--auth=trust", "-E", "UTF8")
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgres://cdp@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
    root = Path(tempfile.mkdtemp(prefix="cdp-outage-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    server = ThrowawayPostgres(bin_dir, root)
    server.start()
    try:
        yield server
    finally:
        subprocess.run(
            _as_pg([f"{bin_dir}/pg_ctl", "-D", str(server.data), "-m", "immediate", "stop"]),
            capture_output=True,
            check=False,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def server_on(throwaway_postgres: ThrowawayPostgres) -> Iterator[str]:
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/"),
        "DATABASE_URL": throwaway_postgres.url,
        "DEBUG": "0",
        "SECRET_KEY": "outage-test-" + "k" * 50,
        "CDP_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "CDP_HASH_SECRET": "outage-test-hash-" + "h" * 32,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "ERROR",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "cdp.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
            "--threads",
            "4",
            "--timeout",
            "60",
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None:
                    pytest.fail(f"gunicorn exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _timed(method: str, url: str, **kwargs: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.request(method, url, timeout=30, **kwargs)
    return response, time.monotonic() - started


@pytest.mark.postgres
def test_with_postgresql_stopped_every_request_is_a_quick_503(
    throwaway_postgres: ThrowawayPostgres, server_on: str
) -> None:
    ready, _ = _timed("GET", f"{server_on}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["database"] == "ok"

    throwaway_postgres.stop()

    basic = base64.b64encode(b"wk_some_write_key:").decode()
    requests = [
        ("GET", "/readyz", {}, "application/json"),
        ("GET", "/api/v1/events", {"Authorization": "Token 0123456789abcdef"}, "application/json"),
        ("POST", "/api/track", {"Authorization": f"Basic {basic}"}, "application/json"),
        ("POST", "/v1/track", {"Authorization": f"Basic {basic}"}, "application/json"),
        ("GET", "/admin/", {"Cookie": "sessionid=abcdefghijklmnopqrstuvwxyz012345"}, "text/html"),
    ]
    body = b'{"event_name": "signup", "distinct_id": "u1", "event": "x", "userId": "u1"}'
    for method, path, headers, content_type in requests:
        headers = {**headers, "Content-Type": "application/json"}
        response, seconds = _timed(method, f"{server_on}{path}", headers=headers, content=body)
        assert response.status_code == 503, (path, response.status_code, response.text[:500])
        assert int(response.headers["Retry-After"]) > 0, path
        assert response.headers["Content-Type"].startswith(content_type), path
        assert seconds < 5, (path, seconds)  # a guard against hanging, not a benchmark
    assert httpx.get(f"{server_on}/healthz").status_code == 200  # liveness needs no database


@pytest.mark.django_db
def test_a_view_whose_database_fails_is_a_503_page(admin_client: Client, monkeypatch: Any) -> None:
    from django.contrib.admin import site

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("connection to server at db.internal failed")

    monkeypatch.setattr(site, "each_context", down)  # read by the index view on each request
    response = admin_client.get("/admin/")
    assert response.status_code == 503
    assert response["Retry-After"] == str(settings.CDP_RETRY_AFTER_SECONDS)
    assert b"Temporarily unavailable" in response.content
    assert b"db.internal" not in response.content


@pytest.mark.redis
@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (set REDIS_URL)")
def test_readyz_reports_the_depth_of_each_queue(db: None) -> None:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete("segments")
    before = Client().get("/readyz").json()
    client.rpush("segments", b"{}", b"{}", b"{}")
    try:
        after = Client().get("/readyz").json()
    finally:
        client.delete("segments")
    assert after["queues"]["segments"] == before["queues"]["segments"] + 3 == 3
    assert after["queues"]["processing"] == before["queues"]["processing"]


def test_an_error_outside_a_view_is_a_503_only_when_the_database_is_down(rf: Any) -> None:
    """handler500 sees errors raised by middleware (loading a session, say) too."""
    from cdp.outage import server_error

    request = rf.get("/api/v1/events")
    try:
        raise OperationalError("could not connect to server")
    except OperationalError:
        response = server_error(request)
    assert response.status_code == 503
    assert response["Retry-After"] == str(settings.CDP_RETRY_AFTER_SECONDS)
    assert response["Content-Type"] == "application/json"
    try:
        raise ValueError("a bug")
    except ValueError:
        response = server_error(rf.get("/admin/"))
    assert response.status_code == 500
