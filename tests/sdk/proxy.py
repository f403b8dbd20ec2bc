"""A local HTTP proxy in front of the live server that fails requests as a test scripts it:
answers 503 or 429 without forwarding (nothing reached the server), forwards and then answers
503 (the server stored the request, the client never learns it), or forwards and then drops the
connection. Every request is recorded with the fault it met and when it arrived."""

from __future__ import annotations

import http.client
import threading
import time
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

FAULTS = ("pass", "503", "429", "forward_then_503", "forward_then_drop")
_FORWARDED_HEADERS = ("Authorization", "Content-Type", "Content-Encoding", "User-Agent")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a production server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        proxy: FaultyProxy = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = proxy.record(self.path, dict(self.headers))
        if fault in ("503", "429"):
            error = b'{"error":{"code":"unavailable","message":"try again","field":null}}'
            headers = {"Content-Type": "application/json", "Retry-After": proxy.retry_after}
            self._answer(int(fault), error, headers)
            return
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=30)
        try:
            headers = {h: self.headers[h] for h in _FORWARDED_HEADERS if self.headers.get(h)}
            upstream.request("POST", self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        if fault == "forward_then_503":
            self._answer(503, b'{"error":{"code":"bad_gateway","message":"lost"}}', {})
        elif fault == "forward_then_drop":
            self.close_connection = True
        else:
            self._answer(response.status, data, {"Content-Type": "application/json"})
        if proxy.close_idle:
            # As gunicorn after its keepalive seconds: no Connection: close, the socket ends.
            self.close_connection = True


class FaultyProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        upstream: str,
        faults: Iterable[str] = (),
        retry_after: str = "0",
        close_idle: bool = False,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.faults = deque(faults)
        assert set(self.faults) <= set(FAULTS)
        self.retry_after = retry_after
        self.close_idle = close_idle
        self.closed = 0
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self.lock:
            self.closed += 1

    def record(self, path: str, headers: dict[str, str]) -> str:
        with self.lock:
            fault = self.faults.popleft() if self.faults else "pass"
            self.requests.append(
                {"path": path, "fault": fault, "headers": headers, "at": time.monotonic()}
            )
            return fault

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> FaultyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(5)
