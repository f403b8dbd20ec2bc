"""A real local webhook target for destination tests: answers by path, checks Standard
Webhooks signatures with the `standardwebhooks` package, and records every request.

Paths: /ok (200), /fail (500), /busy (429 with Retry-After: 1), /gone (410), /hang (answers
after `hang_seconds`), /recovering (503 for the first `fail_first` requests, then 200)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        server: WebhookTarget = self.server  # type: ignore[assignment]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified = None
        if server.secret:
            try:
                Webhook(server.secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        path = self.path.split("?")[0]
        with server.lock:
            server.hits += 1
            hit = server.hits
        status, extra = 200, {}
        if path == "/fail":
            status = 500
        elif path == "/busy":
            status, extra = 429, {"Retry-After": "1"}
        elif path == "/gone":
            status = 410
        elif path == "/hang":
            time.sleep(server.hang_seconds)
        elif path == "/recovering" and hit <= server.fail_first:
            status = 503
        with server.lock:
            server.requests.append(
                {
                    "path": path,
                    "status": status,
                    "headers": headers,
                    "body": orjson.loads(body) if body else None,
                    "verified": verified,
                }
            )
        data = b'{"ok": true}' if status == 200 else b'{"error": "no"}'
        try:
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_PUT = do_PATCH = do_HEAD = do_POST


class WebhookTarget(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, secret: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.secret = secret
        self.hits = 0
        self.fail_first = 0
        self.hang_seconds = 3.0
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self) -> WebhookTarget:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that gave up (the hang tests) closed its end

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def delivered(self, path: str | None = None) -> list[dict[str, Any]]:
        """The requests answered 200 (at `path` when given)."""
        with self.lock:
            return [
                r
                for r in self.requests
                if r["status"] == 200 and (path is None or r["path"] == path)
            ]
