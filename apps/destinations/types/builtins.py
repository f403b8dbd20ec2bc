"""The built-in destination types: webhook, Redis stream, email over SMTP, PostgreSQL table."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
from django.utils import timezone

from apps.destinations.connections import (
    postgres_connect,
    redis_client,
    smtp_connect,
    webhook_headers,
)
from apps.destinations.types.base import DeliveryResult, DestinationType, Outgoing, SendContext
from cdp.outbound import OutboundBlocked, OutboundError, outbound_request

SNIPPET = 1000
MAX_RETRY_AFTER = 24 * 3600.0


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required or [],
        "additionalProperties": False,
    }


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now, capped at a day."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - timezone.now()).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


# --- webhook (Standard Webhooks) ----------------------------------------------------------------


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64 HMAC-SHA256>` signature of `{id}.{timestamp}.{body}` (Standard Webhooks),
    with a `whsec_<base64 key>` secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def active_secrets(credentials: dict[str, Any], now: datetime | None = None) -> list[str]:
    """The signing secrets to sign with: the current one, and those of a rotation that have
    not expired yet (receivers accept any of the signatures)."""
    now = now or timezone.now()
    found = []
    for item in credentials.get("signing_secrets") or []:
        expires = item.get("expires_at")
        if expires and datetime.fromisoformat(expires) <= now:
            continue
        found.append(str(item["secret"]))
    return found


def signature_headers(
    credentials: dict[str, Any], msg_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    signatures = [sign(s, msg_id, timestamp, body) for s in active_secrets(credentials)]
    if signatures:
        headers["webhook-signature"] = " ".join(signatures)
    return headers


def _http_result(response: Any, started: float) -> DeliveryResult:
    status = response.status_code
    snippet = response.text[:SNIPPET]
    ok = 200 <= status < 300
    result = DeliveryResult(
        ok=ok,
        status_code=status,
        response=snippet,
        latency_ms=_ms(started),
        error="" if ok else f"HTTP {status}",
        gone=status == 410,
    )
    if status in (429, 503):
        result.retry_after = retry_after_seconds(response.headers.get("retry-after"))
    return result


class Webhook(DestinationType):
    name = "webhook"
    label = "Webhook (JSON POST, Standard Webhooks signatures)"
    resource_kinds = ("webhook",)
    supports_profile_deleted = True
    settings_schema = _object(
        {
            "path": {"type": "string", "maxLength": 500},
            "method": {"enum": ["POST", "PUT", "PATCH"]},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 500},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 60},
        }
    )

    @classmethod
    def max_batch(cls, settings: dict[str, Any]) -> int:
        return int(settings.get("batch_size", 1))

    def send(self, context: SendContext, batch: list[Outgoing]) -> list[DeliveryResult]:
        url = (
            str(context.credentials["url"]).rstrip("/")
            if context.settings.get("path")
            else str(context.credentials["url"])
        )
        if context.settings.get("path"):
            url += "/" + str(context.settings["path"]).lstrip("/")
        if len(batch) == 1 and self.max_batch(context.settings) == 1:
            return [self._post(context, url, batch[0].key, batch[0].payload)]
        # One request for the batch: its webhook-id names the batch, each item keeps its own.
        batch_id = (
            "batch_" + hashlib.sha256("|".join(o.key for o in batch).encode()).hexdigest()[:32]
        )
        body = {"batch": [{"id": o.key, **_as_object(o.payload)} for o in batch]}
        result = self._post(context, url, batch_id, body)
        return [DeliveryResult(**_copy(result)) for _ in batch]

    def _post(self, context: SendContext, url: str, msg_id: str, body: Any) -> DeliveryResult:
        content = orjson.dumps(body)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "cdp-destinations/1",
            **webhook_headers(context.credentials),
            **signature_headers(context.credentials, msg_id, content),
        }
        started = time.monotonic()
        try:
            response = outbound_request(
                str(context.settings.get("method", "POST")),
                url,
                headers=headers,
                content=content,
                timeout=float(context.settings.get("timeout", 10)),
                max_bytes=4 * SNIPPET,
                allow_internal=context.allow_internal,
            )
        except OutboundBlocked as exc:
            return DeliveryResult(ok=False, error=f"refused: {exc}", latency_ms=_ms(started))
        except OutboundError as exc:
            return DeliveryResult(ok=False, error=str(exc)[:500], latency_ms=_ms(started))
        return _http_result(response, started)


def _as_object(payload: Any) -> dict[str, Any]:
    return payload if isinstance(payload, dict) else {"data": payload}


def _copy(result: DeliveryResult) -> dict[str, Any]:
    return {name: getattr(result, name) for name in DeliveryResult.__dataclass_fields__}


# --- Redis stream -----------------------------------------------------------------------------


class RedisStream(DestinationType):
    name = "redis_stream"
    label = "Redis stream (XADD, approximate MAXLEN)"
    resource_kinds = ("redis",)
    supports_profile_deleted = True
    settings_schema = _object(
        {
            "stream": {"type": "string", "minLength": 1, "maxLength": 200},
            "maxlen": {"type": "integer", "minimum": 1},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 1000},
        },
        ["stream"],
    )

    @classmethod
    def max_batch(cls, settings: dict[str, Any]) -> int:
        return int(settings.get("batch_size", 100))

    def send(self, context: SendContext, batch: list[Outgoing]) -> list[DeliveryResult]:
        import redis

        started = time.monotonic()
        stream = str(context.settings["stream"])
        maxlen = int(context.settings.get("maxlen", 100_000))
        try:
            client = redis_client(
                context.credentials, allow_internal=context.allow_internal, timeout=10.0
            )
            with client.pipeline(transaction=False) as pipe:
                for item in batch:
                    pipe.xadd(
                        stream,
                        {
                            "id": item.key,
                            "type": item.trigger,
                            "payload": orjson.dumps(item.payload),
                        },
                        maxlen=maxlen,
                        approximate=True,
                    )
                ids = pipe.execute()
            client.close()
        except (redis.RedisError, OutboundError) as exc:
            error = str(exc)[:500]
            return [DeliveryResult(ok=False, error=error, latency_ms=_ms(started)) for _ in batch]
        latency = _ms(started)
        return [
            DeliveryResult(ok=True, response=f"stream id {_text(entry)}", latency_ms=latency)
            for entry in ids
        ]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- email over SMTP ------------------------------------------------------------------------


class Email(DestinationType):
    """The payload is {"to", "subject", "body"} (rendered from the settings' templates when
    the delivery is written: see apps.destinations.services.mapping)."""

    name = "email"
    label = "Email over SMTP (templated subject and body)"
    resource_kinds = ("smtp",)
    settings_schema = _object(
        {
            "subject": {"type": "string", "minLength": 1, "maxLength": 1000},
            "body": {"type": "string", "minLength": 1, "maxLength": 100_000},
            "to_trait": {"type": "string", "minLength": 1, "maxLength": 200},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 100},
        },
        ["subject", "body"],
    )

    @classmethod
    def max_batch(cls, settings: dict[str, Any]) -> int:
        return int(settings.get("batch_size", 20))

    def send(self, context: SendContext, batch: list[Outgoing]) -> list[DeliveryResult]:
        import smtplib

        started = time.monotonic()
        results: list[DeliveryResult] = []
        try:
            smtp = smtp_connect(
                context.credentials, allow_internal=context.allow_internal, timeout=10.0
            )
        except (OSError, smtplib.SMTPException, OutboundError) as exc:
            return [DeliveryResult(ok=False, error=str(exc)[:500]) for _ in batch]
        try:
            for item in batch:
                one = time.monotonic()
                payload = _as_object(item.payload).get("data", {})
                message = EmailMessage()
                message["From"] = str(context.credentials["from_email"])
                message["To"] = str(payload.get("to", ""))
                message["Subject"] = str(payload.get("subject", ""))
                # The idempotency key as the Message-ID: a receiver (or a mail filter) can
                # drop a retried message it already has.
                message["Message-ID"] = f"<{_message_id(item.key)}@cdp>"
                message.set_content(str(payload.get("body", "")))
                try:
                    refused = smtp.send_message(message)
                except smtplib.SMTPException as exc:
                    results.append(
                        DeliveryResult(ok=False, error=str(exc)[:500], latency_ms=_ms(one))
                    )
                    continue
                if refused:
                    results.append(DeliveryResult(ok=False, error=f"refused: {refused}"[:500]))
                else:
                    results.append(DeliveryResult(ok=True, status_code=250, latency_ms=_ms(one)))
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()
        del started
        return results


def _message_id(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", key)[:150]


# --- PostgreSQL table -----------------------------------------------------------------------

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")


class PostgresTable(DestinationType):
    """Profiles are upserted by profile id (a later state is never overwritten by an earlier
    one: each row keeps the sequence of the delivery that wrote it); events are inserted once
    by idempotency key. The table is created when missing."""

    name = "postgres_table"
    label = "PostgreSQL table (upsert profiles, insert events)"
    resource_kinds = ("postgres",)
    supports_profile_deleted = True
    settings_schema = _object(
        {
            "table": {"type": "string", "pattern": IDENTIFIER.pattern},
            "mode": {"enum": ["profiles", "events"]},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 1000},
        },
        ["table", "mode"],
    )

    @classmethod
    def max_batch(cls, settings: dict[str, Any]) -> int:
        return int(settings.get("batch_size", 100))

    def send(self, context: SendContext, batch: list[Outgoing]) -> list[DeliveryResult]:
        import psycopg
        from psycopg import sql

        started = time.monotonic()
        table = sql.Identifier(*str(context.settings["table"]).split("."))
        profiles = context.settings.get("mode") == "profiles"
        try:
            with postgres_connect(
                context.credentials, allow_internal=context.allow_internal, timeout=10.0
            ) as conn:
                if profiles:
                    conn.execute(
                        sql.SQL(
                            "CREATE TABLE IF NOT EXISTS {} (profile_id text PRIMARY KEY, "
                            "data jsonb NOT NULL, sequence bigint NOT NULL, "
                            "delivery_key text NOT NULL, updated_at timestamptz NOT NULL)"
                        ).format(table)
                    )
                else:
                    conn.execute(
                        sql.SQL(
                            "CREATE TABLE IF NOT EXISTS {} (delivery_key text PRIMARY KEY, "
                            "type text NOT NULL, profile_id text, data jsonb NOT NULL, "
                            "created_at timestamptz NOT NULL)"
                        ).format(table)
                    )
                now = timezone.now()
                with conn.cursor() as cursor:
                    for item in batch:
                        payload = _as_object(item.payload)
                        data = orjson.dumps(payload.get("data", payload)).decode()
                        if profiles and item.trigger == "profile_deleted":
                            cursor.execute(
                                sql.SQL("DELETE FROM {} WHERE profile_id = %s").format(table),
                                [item.profile_id],
                            )
                        elif profiles:
                            cursor.execute(
                                sql.SQL(
                                    "INSERT INTO {t} AS old (profile_id, data, sequence, "
                                    "delivery_key, updated_at) VALUES (%s, %s, %s, %s, %s) "
                                    "ON CONFLICT (profile_id) DO UPDATE SET data = "
                                    "EXCLUDED.data, sequence = EXCLUDED.sequence, "
                                    "delivery_key = EXCLUDED.delivery_key, updated_at = "
                                    "EXCLUDED.updated_at WHERE old.sequence < EXCLUDED.sequence"
                                ).format(t=table),
                                [item.profile_id, data, item.delivery_id, item.key, now],
                            )
                        else:
                            cursor.execute(
                                sql.SQL(
                                    "INSERT INTO {} (delivery_key, type, profile_id, data, "
                                    "created_at) VALUES (%s, %s, %s, %s, %s) "
                                    "ON CONFLICT (delivery_key) DO NOTHING"
                                ).format(table),
                                [item.key, item.trigger, item.profile_id, data, now],
                            )
                conn.commit()
        except (psycopg.Error, OutboundError) as exc:
            error = str(exc).strip()[:500]
            return [DeliveryResult(ok=False, error=error, latency_ms=_ms(started)) for _ in batch]
        latency = _ms(started)
        return [DeliveryResult(ok=True, latency_ms=latency) for _ in batch]

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> list[tuple[str, str]]:
        if not IDENTIFIER.match(str(settings.get("table", ""))):
            return [("settings.table", "must be a table name (letters, digits, _; schema.table)")]
        return []


BUILTIN_TYPES: tuple[type[DestinationType], ...] = (Webhook, RedisStream, Email, PostgresTable)
