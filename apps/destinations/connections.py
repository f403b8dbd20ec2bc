"""What each resource kind's credentials hold, how they are shown masked, checked and tested.

Credentials are a JSON object per kind (production and test sets alike). Keys in `PUBLIC`
are shown as they are (a host, a port, a user name); every other value is a secret shown
masked. Every connection goes through the SSRF guard of cdp/outbound.py: a host that resolves
to an internal address is refused unless the resource is marked internal."""

from __future__ import annotations

import base64
import secrets
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cdp.outbound import (
    OutboundError,
    outbound_request,
    resolve_checked,
)

MASK = "********"
TEST_TIMEOUT = 5.0


class ConnectionFailed(Exception):
    """A resource's connection test failed: the message says what to fix."""


@dataclass(frozen=True, slots=True)
class KindSpec:
    required: tuple[str, ...]
    allowed: tuple[str, ...]
    public: tuple[str, ...]


SPECS: dict[str, KindSpec] = {
    "webhook": KindSpec(
        required=("url",),
        allowed=("url", "headers", "auth", "signing_secrets"),
        public=(),
    ),
    "smtp": KindSpec(
        required=("host", "from_email"),
        allowed=("host", "port", "username", "password", "starttls", "ssl", "from_email"),
        public=("host", "port", "username", "starttls", "ssl", "from_email"),
    ),
    "redis": KindSpec(required=("url",), allowed=("url",), public=()),
    "postgres": KindSpec(required=("url",), allowed=("url",), public=()),
    "kafka": KindSpec(
        required=("bootstrap_servers",),
        allowed=(
            "bootstrap_servers",
            "security_protocol",
            "sasl_mechanism",
            "username",
            "password",
        ),
        public=("bootstrap_servers", "security_protocol", "sasl_mechanism", "username"),
    ),
}


def _url_host(url: str) -> str:
    """A URL shown without what may be secret in it: scheme, host and port only."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MASK
    return f"{parts.scheme}://{host}{port}/{MASK}" if host else MASK


def credentials_masked(kind: str, credentials: dict[str, Any] | None) -> dict[str, Any]:
    """The credentials as the admin and the API show them: public keys as they are, URLs as
    their host only, every other value masked (never the secret, never part of it)."""
    if not credentials:
        return {}
    spec = SPECS.get(kind)
    shown: dict[str, Any] = {}
    for key, value in credentials.items():
        if spec is not None and key in spec.public:
            shown[key] = value
        elif key == "url" and isinstance(value, str):
            shown[key] = _url_host(value)
        elif key == "headers" and isinstance(value, dict):
            shown[key] = dict.fromkeys(value, MASK)
        elif key == "signing_secrets" and isinstance(value, list):
            shown[key] = [
                {"secret": MASK, "expires_at": item.get("expires_at")}
                for item in value
                if isinstance(item, dict)
            ]
        else:
            shown[key] = MASK
    return shown


def credentials_check(kind: str, credentials: dict[str, Any], field: str) -> list[tuple[str, str]]:
    """Errors in a credentials object, as (field, message)."""
    spec = SPECS.get(kind)
    if spec is None:
        return [("kind", f"unknown resource kind {kind!r}")]
    if not isinstance(credentials, dict):
        return [(field, "must be an object")]
    if not credentials:
        return []
    errors: list[tuple[str, str]] = []
    for key in spec.required:
        if not credentials.get(key):
            errors.append((f"{field}.{key}", "is required"))
    for key in credentials:
        if key not in spec.allowed:
            names = ", ".join(spec.allowed)
            errors.append((f"{field}.{key}", f"is not a {kind} credential ({names})"))
    url = credentials.get("url")
    if url is not None:
        scheme = {
            "webhook": ("http", "https"),
            "redis": ("redis", "rediss"),
            "postgres": ("postgres", "postgresql"),
        }.get(kind, ())
        try:
            parts = urlsplit(str(url))
            valid = parts.scheme in scheme and bool(parts.hostname)
        except ValueError:
            valid = False
        if not valid:
            errors.append((f"{field}.url", f"must be a {' or '.join(scheme)} URL with a host"))
    if kind == "webhook":
        headers = credentials.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            errors.append((f"{field}.headers", "must be an object of strings"))
        auth = credentials.get("auth")
        if auth is not None and not (
            isinstance(auth, dict)
            and (
                (auth.get("type") == "bearer" and isinstance(auth.get("token"), str))
                or (auth.get("type") == "basic" and isinstance(auth.get("username"), str))
            )
        ):
            errors.append(
                (
                    f"{field}.auth",
                    'must be {"type": "bearer", "token": ...} or '
                    '{"type": "basic", "username": ..., "password": ...}',
                )
            )
        secrets_ = credentials.get("signing_secrets")
        if secrets_ is not None and not (
            isinstance(secrets_, list)
            and all(
                isinstance(s, dict) and str(s.get("secret", "")).startswith("whsec_")
                for s in secrets_
            )
        ):
            errors.append((f"{field}.signing_secrets", 'must be a list of {"secret": "whsec_..."}'))
    if kind == "smtp" and "port" in credentials:
        port = credentials["port"]
        if not isinstance(port, int) or not 0 < port < 65536:
            errors.append((f"{field}.port", "must be a port number"))
    return errors


def credentials_merge(old: dict[str, Any], new: dict[str, Any] | None) -> dict[str, Any]:
    """A write of credentials: values equal to the mask keep the stored secret (a form or
    client sending back what it was shown changes nothing); others replace it."""
    if new is None:
        return old

    def keep(stored: Any, sent: Any) -> Any:
        if sent == MASK:
            return stored
        if isinstance(sent, dict) and isinstance(stored, dict):
            return {k: keep(stored.get(k), v) for k, v in sent.items()}
        return sent

    return {key: keep(old.get(key), value) for key, value in new.items()}


# --- signing secrets (Standard Webhooks) ------------------------------------------------------


def signing_secret_new() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


# --- the SSRF guard for non-HTTP connections ---------------------------------------------------


def guard_host(host: str, port: int, *, allow_internal: bool) -> str:
    """The address to connect to for host:port, refusing internal ones (OutboundBlocked) as
    outbound HTTP does, unless allowed."""
    _, address = resolve_checked(f"http://{_bracket(host)}:{port}/", allow_internal=allow_internal)
    return str(address)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


# --- connection tests --------------------------------------------------------------------------


def connection_test(kind: str, credentials: dict[str, Any], *, allow_internal: bool) -> str:
    """Connect with the credentials and say what answered; ConnectionFailed says why not."""
    if not credentials:
        raise ConnectionFailed("No credentials are set")
    started = time.monotonic()
    test = _TESTS.get(kind)
    if test is None:
        raise ConnectionFailed(f"Resources of kind {kind!r} cannot be tested")
    try:
        message = test(credentials, allow_internal)
    except OutboundError as exc:  # refused (an internal address) or does not resolve
        raise ConnectionFailed(str(exc)) from exc
    except (KeyError, ValueError, TypeError) as exc:
        raise ConnectionFailed(f"The credentials are incomplete or malformed: {exc}") from exc
    return f"{message} ({(time.monotonic() - started) * 1000:.0f} ms)"


def webhook_headers(credentials: dict[str, Any]) -> dict[str, str]:
    """The headers a webhook resource sends: its own, then its authorization."""
    headers = {str(k): str(v) for k, v in (credentials.get("headers") or {}).items()}
    auth = credentials.get("auth") or {}
    if auth.get("type") == "bearer":
        headers["Authorization"] = f"Bearer {auth['token']}"
    elif auth.get("type") == "basic":
        pair = f"{auth.get('username', '')}:{auth.get('password', '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    return headers


def _test_webhook(credentials: dict[str, Any], allow_internal: bool) -> str:
    try:
        response = outbound_request(
            "HEAD",
            str(credentials["url"]),
            headers=webhook_headers(credentials),
            timeout=TEST_TIMEOUT,
            max_bytes=1024,
            allow_internal=allow_internal,
        )
    except OutboundError as exc:
        raise ConnectionFailed(str(exc)) from exc
    if response.status_code in (401, 403):
        raise ConnectionFailed(f"The server refused the credentials (HTTP {response.status_code})")
    return f"Reachable: HTTP {response.status_code}"


def _test_smtp(credentials: dict[str, Any], allow_internal: bool) -> str:
    host = str(credentials["host"])
    port = int(credentials.get("port") or (465 if credentials.get("ssl") else 25))
    try:
        with smtp_connect(credentials, allow_internal=allow_internal, timeout=TEST_TIMEOUT) as smtp:
            code, _ = smtp.noop()
    except (OSError, smtplib.SMTPException) as exc:
        raise ConnectionFailed(f"SMTP {host}:{port}: {exc}") from exc
    return f"SMTP server {host}:{port} answered {code}"


def smtp_connect(
    credentials: dict[str, Any], *, allow_internal: bool, timeout: float
) -> smtplib.SMTP:
    """A logged-in SMTP connection (TLS as configured) to the checked address."""
    host = str(credentials["host"])
    use_ssl = bool(credentials.get("ssl"))
    port = int(credentials.get("port") or (465 if use_ssl else 25))
    # Checked first; the connection then uses the name, so that TLS verifies the certificate
    # of the host the admin configured.
    guard_host(host, port, allow_internal=allow_internal)
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if use_ssl:
        smtp = smtplib.SMTP_SSL(timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(timeout=timeout)
    smtp.connect(host, port)
    smtp.ehlo_or_helo_if_needed()
    if credentials.get("starttls") and not use_ssl:
        smtp.starttls(context=context)
        smtp.ehlo()
    if credentials.get("username"):
        smtp.login(str(credentials["username"]), str(credentials.get("password", "")))
    return smtp


def redis_client(credentials: dict[str, Any], *, allow_internal: bool, timeout: float) -> Any:
    """A Redis client connected to the checked address of the resource's URL."""
    import redis

    parts = urlsplit(str(credentials["url"]))
    port = parts.port or 6379
    address = guard_host(parts.hostname or "", port, allow_internal=allow_internal)
    db = int((parts.path or "/0").strip("/") or 0)
    return redis.Redis(
        host=address,
        port=port,
        db=db,
        username=parts.username or None,
        password=parts.password or None,
        ssl=parts.scheme == "rediss",
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 3.0),
    )


def _test_redis(credentials: dict[str, Any], allow_internal: bool) -> str:
    import redis

    try:
        client = redis_client(credentials, allow_internal=allow_internal, timeout=TEST_TIMEOUT)
        client.ping()
        version = client.info("server").get("redis_version", "?")
        client.close()
    except redis.RedisError as exc:
        raise ConnectionFailed(f"Redis: {exc}") from exc
    return f"Redis {version} answered PING"


def postgres_connect(credentials: dict[str, Any], *, allow_internal: bool, timeout: float) -> Any:
    """A psycopg connection to the checked address of the resource's URL (autocommit off)."""
    import psycopg

    url = str(credentials["url"])
    parts = urlsplit(url)
    port = parts.port or 5432
    address = guard_host(parts.hostname or "", port, allow_internal=allow_internal)
    return psycopg.connect(
        url, hostaddr=address, connect_timeout=max(int(timeout), 1), application_name="cdp"
    )


def _test_postgres(credentials: dict[str, Any], allow_internal: bool) -> str:
    import psycopg

    try:
        with postgres_connect(
            credentials, allow_internal=allow_internal, timeout=TEST_TIMEOUT
        ) as conn:
            row = conn.execute("SELECT current_setting('server_version')").fetchone()
    except psycopg.Error as exc:
        raise ConnectionFailed(f"PostgreSQL: {str(exc).strip()}") from exc
    return f"PostgreSQL {row[0] if row else '?'} answered"


def _test_kafka(credentials: dict[str, Any], allow_internal: bool) -> str:
    for server in str(credentials["bootstrap_servers"]).split(","):
        host, _, port = server.strip().rpartition(":")
        if not host:
            host, port = port, "9092"
        guard_host(host.strip("[]"), int(port or 9092), allow_internal=allow_internal)
        try:
            with socket.create_connection((host.strip("[]"), int(port or 9092)), TEST_TIMEOUT):
                pass
        except OSError as exc:
            raise ConnectionFailed(f"Kafka broker {server.strip()}: {exc}") from exc
    return "Kafka brokers reachable"


_TESTS = {
    "webhook": _test_webhook,
    "smtp": _test_smtp,
    "redis": _test_redis,
    "postgres": _test_postgres,
    "kafka": _test_kafka,
}
