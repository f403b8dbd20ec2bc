"""Settings from the environment: the embedded default, production parts, and .env.example."""

from __future__ import annotations

import json
import os
import re
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    (BASE_DIR / ".env").exists(),
    reason="a local .env file is read by the settings, so the environment is not clean",
)

SHOW_SETTINGS = """
import json, os
os.environ["DJANGO_SETTINGS_MODULE"] = "cdp.settings"
import django
django.setup()
from django.conf import settings
from cdp.celery import app
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"],
    "name": str(db["NAME"]),
    "host": db.get("HOST"),
    "options": {k: v for k, v in db.get("OPTIONS", {}).items()},
    "conn_max_age": db.get("CONN_MAX_AGE"),
    "cache": settings.CACHES["default"]["BACKEND"],
    "cache_location": settings.CACHES["default"].get("LOCATION"),
    "eager": app.conf.task_always_eager,
    "broker": app.conf.broker_url,
    "debug": settings.DEBUG,
    "allowed_hosts": settings.ALLOWED_HOSTS,
    "dispatch": settings.CDP_DISPATCH_MODE,
}))
"""


SHOW_SECURITY = """
import json, os
os.environ["DJANGO_SETTINGS_MODULE"] = "cdp.settings"
from django.conf import settings
print(json.dumps({
    "ssl_redirect": settings.SECURE_SSL_REDIRECT,
    "secure_cookies": settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE,
}))
"""


def clean_env(**variables: str) -> dict[str, str]:
    """Nothing from the test run's environment but what Python needs to start."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    env.update(variables)
    return env


def run_python(code: str, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=clean_env(**variables),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def settings_with(**variables: str) -> dict:
    result = run_python(SHOW_SETTINGS, **variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def dev_settings_with(**variables: str) -> dict:
    """Settings as `make run` loads them: DEBUG on, the rest from `variables`."""
    return settings_with(DEBUG="1", **variables)


def fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def production_secret() -> str:
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    return "".join(secrets.choice(alphabet) for _ in range(50))


def test_debug_is_off_unless_asked_for():
    settings = settings_with(
        SECRET_KEY=production_secret(),
        CDP_ENCRYPTION_KEYS=fernet_key(),
        CDP_HASH_SECRET=production_secret(),
        ALLOWED_HOSTS="example.com",
    )

    assert settings["debug"] is False
    assert settings["allowed_hosts"] == ["example.com"]


def test_debug_on_runs_the_embedded_default():
    settings = dev_settings_with()

    assert settings["engine"] == "django.db.backends.sqlite3"
    assert settings["name"] == str(BASE_DIR / "db.sqlite3")
    assert settings["eager"] is True
    assert settings["broker"] == "memory://"
    assert settings["cache"].endswith("LocMemCache")
    assert settings["debug"] is True


def test_database_url_switches_to_postgresql_with_the_psycopg_pool():
    settings = dev_settings_with(DATABASE_URL="postgres://cdp:pw@db.example.com:5432/cdp")

    assert settings["engine"] == "django.db.backends.postgresql"
    assert settings["host"] == "db.example.com"
    # Short waits by default: an outage answers 503 at once instead of holding threads.
    assert settings["options"]["pool"] == {"min_size": 2, "max_size": 10, "timeout": 1.0}
    assert settings["options"]["connect_timeout"] == 1
    assert settings["conn_max_age"] == 0  # the pool, not persistent connections, reuses them
    # Without Redis, tasks still run in-process.
    assert settings["eager"] is True


def test_the_pool_can_be_sized_or_turned_off():
    sized = dev_settings_with(
        DATABASE_URL="postgres://cdp@db/cdp", DATABASE_POOL_MIN="1", DATABASE_POOL_MAX="40"
    )
    assert sized["options"]["pool"]["min_size"] == 1
    assert sized["options"]["pool"]["max_size"] == 40

    unpooled = dev_settings_with(DATABASE_URL="postgres://cdp@db/cdp", DATABASE_POOL="0")
    assert "pool" not in unpooled["options"]
    assert unpooled["conn_max_age"] == 60


def test_redis_url_switches_to_the_redis_broker_and_cache():
    settings = dev_settings_with(REDIS_URL="redis://cache.example.com:6379/2")

    assert settings["broker"] == "redis://cache.example.com:6379/2"
    assert settings["eager"] is False  # a real worker runs the tasks
    assert settings["cache"] == "cdp.cache.RedisCache"
    assert settings["cache_location"] == "redis://cache.example.com:6379/2"


def test_production_without_a_secret_key_fails_clearly():
    for debug in ({}, {"DEBUG": "0"}):  # off by default, or said so
        result = run_python(SHOW_SETTINGS, ALLOWED_HOSTS="example.com", **debug)

        assert result.returncode != 0
        assert "ImproperlyConfigured: Set the SECRET_KEY environment variable" in result.stderr


def test_production_without_allowed_hosts_fails_clearly():
    result = run_python(
        SHOW_SETTINGS, SECRET_KEY=production_secret(), CDP_ENCRYPTION_KEYS=fernet_key()
    )

    assert result.returncode != 0
    assert "ImproperlyConfigured: Set the ALLOWED_HOSTS environment variable" in result.stderr


def test_production_without_a_hash_secret_fails_clearly():
    result = run_python(
        SHOW_SETTINGS,
        SECRET_KEY=production_secret(),
        CDP_ENCRYPTION_KEYS=fernet_key(),
        ALLOWED_HOSTS="example.com",
    )

    assert result.returncode != 0
    assert "ImproperlyConfigured: Set CDP_HASH_SECRET" in result.stderr


def test_production_turns_the_transport_security_on():
    settings = run_python(
        SHOW_SECURITY,
        SECRET_KEY=production_secret(),
        CDP_ENCRYPTION_KEYS=fernet_key(),
        CDP_HASH_SECRET=production_secret(),
        ALLOWED_HOSTS="example.com",
    )
    development = run_python(SHOW_SECURITY, DEBUG="1")

    assert settings.returncode == 0, settings.stderr
    assert json.loads(settings.stdout) == {"ssl_redirect": True, "secure_cookies": True}
    assert json.loads(development.stdout) == {"ssl_redirect": False, "secure_cookies": False}


def test_check_deploy_is_clean_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=clean_env(
            DEBUG="0",
            SECRET_KEY=production_secret(),
            CDP_ENCRYPTION_KEYS=fernet_key(),
            CDP_HASH_SECRET=production_secret(),
            ALLOWED_HOSTS="example.com",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def settings_variables() -> set[str]:
    source = (BASE_DIR / "cdp" / "settings.py").read_text()
    return set(re.findall(r"""\benv(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]*)["']""", source))


def test_env_example_documents_every_variable_the_settings_read():
    documented = set(
        re.findall(
            r"^#?\s*([A-Z][A-Z0-9_]*)=", (BASE_DIR / ".env.example").read_text(), re.MULTILINE
        )
    )
    read = settings_variables()

    assert {"DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= read  # the regex finds them
    assert read - documented == set()
    assert documented - read == set(), "documented variables the settings no longer read"


def env_example_values() -> dict[str, str]:
    values = {}
    for line in (BASE_DIR / ".env.example").read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            values[match[1]] = match[2].strip()
    return values


def test_env_example_sets_nothing_by_default():
    """Copied as is to .env, it keeps the embedded default: every variable is commented out."""
    text = (BASE_DIR / ".env.example").read_text()

    assert [line for line in text.splitlines() if line and not line.startswith("#")] == []


def test_env_example_values_are_accepted_by_the_settings():
    """Its example values, all set at once, load: a production configuration, no typos."""
    values = env_example_values()
    assert values["SECRET_KEY"] == ""  # no secret to copy: each deployment makes its own
    values["SECRET_KEY"] = production_secret()
    assert values["CDP_ENCRYPTION_KEYS"] == ""  # nor a key to copy
    values["CDP_ENCRYPTION_KEYS"] = fernet_key()
    assert values["CDP_HASH_SECRET"] == ""  # nor a hashing key
    values["CDP_HASH_SECRET"] = production_secret()

    settings = settings_with(**values)

    assert settings["debug"] is False
    assert settings["engine"] == "django.db.backends.postgresql"
    assert settings["broker"].startswith("redis://")
    assert settings["allowed_hosts"] == ["cdp.example.com", "localhost"]


def test_processing_is_dispatched_in_the_background_only_with_a_broker():
    assert dev_settings_with()["dispatch"] == "inline"
    assert dev_settings_with(REDIS_URL="redis://127.0.0.1:6379/0")["dispatch"] == "background"
    explicit = dev_settings_with(REDIS_URL="redis://127.0.0.1:6379/0", CDP_DISPATCH_MODE="inline")
    assert explicit["dispatch"] == "inline"
    result = run_python(SHOW_SETTINGS, DEBUG="1", CDP_DISPATCH_MODE="later")
    assert result.returncode != 0
    assert "CDP_DISPATCH_MODE must be inline or background" in result.stderr
