"""The production entry point (Procfile, collectstatic, gunicorn + whitenoise) and the static
files of local development, each run as a real process on a free port."""

from __future__ import annotations

import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from django.conf import settings

BASE_DIR = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TRACKER = (BASE_DIR / "static" / "cdp.js").read_bytes()

pytestmark = pytest.mark.skipif(
    (BASE_DIR / ".env").exists(),
    reason="a local .env file is read by the settings, so the environment is not clean",
)


def procfile() -> dict[str, str]:
    lines = (BASE_DIR / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if re.match(r"^[a-z]+:", line))


def production_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    """A production environment (DEBUG off) with nothing from the test run's own."""
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/"),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "CDP_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "CDP_HASH_SECRET": secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "STATIC_ROOT": str(tmp_path / "static"),
    }
    env.update(variables)
    return env


def collectstatic(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(command: str, env: dict[str, str], port: int) -> Iterator[httpx.Client]:
    """Runs `command` through the shell (as honcho does) in its own process group; yields a
    client once /healthz answers; kills the group afterwards."""
    process = subprocess.Popen(
        ["/bin/sh", "-c", f"exec {command}"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not answer /healthz in 60 s"
            time.sleep(0.2)
        yield client
    finally:
        client.close()
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        process.stderr.close()  # type: ignore[union-attr]


def test_the_procfile_runs_the_web_server_a_worker_on_every_queue_and_beat():
    processes = procfile()

    assert set(processes) == {"web", "worker", "beat"}
    assert shlex.split(processes["web"])[0] == "gunicorn"
    assert shlex.split(processes["beat"])[:4] == ["celery", "-A", "cdp", "beat"]
    worker = shlex.split(processes["worker"])
    assert worker[:4] == ["celery", "-A", "cdp", "worker"]
    # The queue list is read from the one declaration (cdp/queues.py), as the Makefile does.
    assert "-Q $(python -m cdp.queues)" in processes["worker"]
    printed = subprocess.run(
        [sys.executable, "-m", "cdp.queues"], capture_output=True, text=True, check=True
    ).stdout
    consumed = set(printed.strip().split(","))
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed | {settings.CELERY_TASK_DEFAULT_QUEUE} == consumed


def test_collectstatic_gathers_the_tracker_and_the_admin_assets(tmp_path: Path):
    result = collectstatic(production_env(tmp_path))

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "static" / "cdp.js").read_bytes() == TRACKER
    assert (tmp_path / "static" / "admin" / "css" / "base.css").is_file()


def test_the_procfile_web_command_serves_health_and_the_tracker(tmp_path: Path):
    port = free_port()
    env = production_env(tmp_path, PORT=str(port), GUNICORN_WORKERS="1", GUNICORN_THREADS="2")
    assert collectstatic(env).returncode == 0

    with serving(procfile()["web"], env, port) as client:
        # As behind the TLS proxy production expects (plain HTTP is redirected to HTTPS).
        tracker = client.get("/static/cdp.js", headers={"X-Forwarded-Proto": "https"})
        health = client.get("/healthz")
        plain = client.get("/static/cdp.js")

    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert tracker.status_code == 200
    assert tracker.content == TRACKER
    assert tracker.headers["content-type"].startswith("text/javascript")
    assert plain.status_code == 301
    assert plain.headers["location"] == f"https://127.0.0.1:{port}/static/cdp.js"


def test_runserver_with_debug_on_serves_the_admin_css_and_the_tracker(tmp_path: Path):
    """`make run` on a fresh machine: no collectstatic, the files come from the source tree."""
    port = free_port()
    env = production_env(tmp_path, DEBUG="1")
    del env["SECRET_KEY"], env["ALLOWED_HOSTS"]
    command = f"{shlex.quote(sys.executable)} manage.py runserver --noreload 127.0.0.1:{port}"

    with serving(command, env, port) as client:
        css = client.get("/static/admin/css/base.css")
        tracker = client.get("/static/cdp.js")

    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert tracker.status_code == 200
    assert tracker.content == TRACKER
    assert not (tmp_path / "static").exists()  # nothing was collected
