"""A real local HTTP server on a free port that records every request, for the workflow
actions (and anything else) that call out to other services."""

from __future__ import annotations

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


class Recorder(BaseHTTPRequestHandler):
    """Paths: /ok (JSON 200), /slow (200 after 1 s), /missing (404), /flaky (503 twice per
    key, then 200), /down (always 503). Every request is recorded on the server."""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self) -> None:
        server: LocalServer = self.server  # type: ignore[assignment]
        with server.lock:
            server.in_flight += 1
            server.most_in_flight = max(server.most_in_flight, server.in_flight)
        try:
            self._answer(server)
        finally:
            with server.lock:
                server.in_flight -= 1

    def _answer(self, server: LocalServer) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with server.lock:
            server.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "body": body.decode(),
                    "headers": dict(self.headers),
                }
            )
        path = self.path.split("?")[0]
        status, payload = 200, {"ok": True, "path": path}
        if path == "/slow":
            time.sleep(1.0)
        elif path == "/missing":
            status, payload = 404, {"error": "missing"}
        elif path == "/down":
            status, payload = 503, {"error": "down"}
        elif path == "/flaky":
            with server.lock:
                server.flaky += 1
                if server.flaky <= 2:
                    status, payload = 503, {"error": "try again"}
        data = orjson.dumps(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _reply


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Recorder)
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.flaky = 0
        # Requests being answered at once now, and the most there ever were.
        self.in_flight = 0
        self.most_in_flight = 0

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out (the timeout tests) closed its end: nothing to report.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"
