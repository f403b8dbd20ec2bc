"""One HTTP connection to the server: Basic auth with the write key, gzip, and retries with
exponential backoff and jitter on network errors, 429 and 5xx, honouring Retry-After."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import logging
import random
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from cdp_analytics.errors import APIError

logger = logging.getLogger("cdp_analytics")

# Bodies this small gain nothing from gzip.
GZIP_MIN_BYTES = 512


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry a request that may succeed later.

    The n-th retry waits a random time up to min(backoff_max, backoff_base * 2**n) ("full
    jitter", so that many clients do not retry in step), or what the server's Retry-After asks
    when that is longer (at most retry_after_max)."""

    max_retries: int = 8
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 120.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
        wait = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.retry_after_max))
        return wait


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_from(status: int, data: bytes) -> APIError:
    try:
        body: Any = json.loads(data) if data else None
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return APIError(
            str(error.get("message") or f"HTTP {status}"),
            status=status,
            code=str(error.get("code") or ""),
            field=error.get("field"),
            body=body,
        )
    text = data[:200].decode("utf-8", "replace").strip()
    return APIError(text or f"HTTP {status}", status=status, body=body)


# http.client writes a request's headers and its body with two system calls: the body then
# waits on Nagle's algorithm for the server's delayed ACK, and the sending thread takes the GIL
# back once more per request (a wait of up to 5 ms when the application's threads are busy).
# These connections write both at once, with TCP_NODELAY as urllib3 sets it.


class _Connection(http.client.HTTPConnection):
    pending_body: bytes | None = None

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: Any) -> None:
        if self.pending_body is not None:
            data, self.pending_body = bytes(data) + self.pending_body, None
        super().send(data)


class _TLSConnection(http.client.HTTPSConnection):
    pending_body: bytes | None = None

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: Any) -> None:
        if self.pending_body is not None:
            data, self.pending_body = bytes(data) + self.pending_body, None
        super().send(data)


def _post(
    connection: _Connection | _TLSConnection, url: str, body: bytes, headers: dict[str, str]
) -> None:
    connection.putrequest("POST", url, skip_accept_encoding=True)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.putheader("Content-Length", str(len(body)))
    connection.pending_body = body
    try:
        connection.endheaders()
    finally:
        connection.pending_body = None


def _closed_by_server(connection: http.client.HTTPConnection) -> bool:
    """An idle kept-alive socket has nothing to read; if it has, it is the server's close (or
    data nobody asked for): either way the connection can't carry a request."""
    if connection.sock is None:
        return False
    try:
        readable, _, _ = select.select([connection.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class Transport:
    """Sends request bodies to one host, one request at a time over a kept-alive connection."""

    def __init__(
        self,
        *,
        write_key: str,
        host: str,
        timeout: float,
        gzip: bool,
        retry: RetryPolicy,
        user_agent: str,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        parts = urlsplit(host)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"host must be an http(s) URL such as https://cdp.example.com: {host!r}"
            )
        self.scheme = parts.scheme
        self.hostname = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.timeout = timeout
        self.gzip = gzip
        self.retry = retry
        self.sleep = sleep
        token = base64.b64encode(f"{write_key}:".encode()).decode()
        self.headers = {
            "Authorization": f"Basic {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": user_agent,
        }
        self._connection: _Connection | _TLSConnection | None = None
        self._lock = threading.Lock()
        self.retries = 0

    def _connect(self) -> _Connection | _TLSConnection:
        if self._connection is not None and _closed_by_server(self._connection):
            # The server ended the kept-alive connection while it was idle (gunicorn does
            # after its keepalive seconds): reconnect now rather than fail the request on it.
            self._connection.close()
            self._connection = None
        if self._connection is None:
            if self.scheme == "https":
                self._connection = _TLSConnection(
                    self.hostname,
                    self.port,
                    timeout=self.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                self._connection = _Connection(self.hostname, self.port, timeout=self.timeout)
        return self._connection

    def forget_connection(self) -> None:
        """In a forked child: the connection's socket is the parent's; open a new one."""
        self._lock = threading.Lock()
        self._connection = None

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _send_once(self, path: str, body: bytes) -> tuple[int, http.client.HTTPMessage, bytes]:
        headers = dict(self.headers)
        if self.gzip and len(body) >= GZIP_MIN_BYTES:
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        connection = self._connect()
        try:
            _post(connection, self.prefix + path, body, headers)
            response = connection.getresponse()
            data = response.read()
        except BaseException:
            # The connection is in an unknown state: open a new one next time.
            connection.close()
            self._connection = None
            raise
        if response.will_close:
            connection.close()
            self._connection = None
        return response.status, response.headers, data

    def post(self, path: str, build_body: Callable[[], bytes]) -> Any:
        """POST a body (rebuilt for each attempt, so that its sent_at is fresh) and return the
        server's JSON answer. Raises APIError for a refusal, or when every retry failed."""
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                with self._lock:
                    status, headers, data = self._send_once(path, build_body())
            except (OSError, http.client.HTTPException) as exc:
                error = APIError(
                    f"could not reach {self.origin}: {type(exc).__name__}: {exc}",
                    code="network_error",
                )
            else:
                if 200 <= status < 300:
                    try:
                        return json.loads(data) if data else {}
                    except ValueError:
                        return {}
                error = _error_from(status, data)
                if not error.retryable:
                    raise error
                retry_after = parse_retry_after(headers.get("Retry-After"))
            if attempt >= self.retry.max_retries:
                raise error
            wait = self.retry.delay(attempt, retry_after)
            attempt += 1
            self.retries += 1
            logger.warning(
                "%s %s failed (%s); retry %d of %d in %.1f s",
                "POST",
                path,
                error,
                attempt,
                self.retry.max_retries,
                wait,
            )
            self.sleep(wait)
