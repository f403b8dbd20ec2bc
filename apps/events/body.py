"""Reading a tracking request's body: size limits, gzip/deflate, JSON.

The body is parsed as JSON whatever Content-Type it declares: trackers send JSON as text/plain
(sendBeacon), as a form type (some HTTP clients' default for a gzipped buffer) or with none,
and a body that is not JSON is a 400 whatever it claims to be. Limits are checked before and
while reading, and a compressed body is inflated in bounded steps, so a decompression bomb is
refused after inflating at most the limit plus one byte.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import orjson
from django.http import HttpRequest

from apps.events.incoming import OutOfRange
from cdp.errors import DomainError

ENCODINGS = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate"}


def _too_large(what: str, limit: int) -> DomainError:
    return DomainError(
        f"{what} is over the limit of {limit} bytes: send smaller batches",
        code="payload_too_large",
        status_code=413,
    )


def read_body(request: HttpRequest, *, max_bytes: int) -> bytes:
    """The decoded request body, at most max_bytes after decompression."""
    encoding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if encoding not in ENCODINGS and encoding not in ("", "identity"):
        raise DomainError(
            f"Content-Encoding {encoding[:40]!r} is not supported: send gzip, deflate or no "
            "encoding",
            code="unsupported_media_type",
            status_code=415,
        )
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > max_bytes:
        raise _too_large("The request body", max_bytes)
    raw = request.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise _too_large("The request body", max_bytes)
    if encoding in ENCODINGS:
        raw = _inflate(raw, ENCODINGS[encoding], max_bytes=max_bytes)
    if not raw.strip():
        raise DomainError("The request body is empty: send a JSON event", code="empty_body")
    return raw


def _inflate(raw: bytes, encoding: str, *, max_bytes: int) -> bytes:
    # wbits 32+MAX_WBITS reads gzip and zlib headers alike; "deflate" is zlib-wrapped by the
    # HTTP spec, but some clients send a raw deflate stream: read that too.
    try:
        return _inflate_with(raw, 32 + zlib.MAX_WBITS, encoding, max_bytes=max_bytes)
    except DomainError as error:
        if encoding != "deflate" or error.code != "invalid_encoding":
            raise
    return _inflate_with(raw, -zlib.MAX_WBITS, encoding, max_bytes=max_bytes)


def _inflate_with(raw: bytes, wbits: int, encoding: str, *, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    try:
        body = inflater.decompress(raw, max_bytes + 1)
    except zlib.error:
        raise DomainError(
            f"The body is not valid {encoding} data (Content-Encoding: {encoding} was sent)",
            code="invalid_encoding",
        ) from None
    if len(body) > max_bytes or inflater.unconsumed_tail:
        raise _too_large("The decompressed request body", max_bytes)
    if not inflater.eof:
        raise DomainError(f"The {encoding} body is truncated", code="invalid_encoding")
    return body


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON: send null or a finite number")


def _parse_float(text: str) -> float | OutOfRange:
    value = float(text)
    return OutOfRange(text) if value in (float("inf"), float("-inf")) else value


def parse_json(raw: bytes) -> Any:
    """Parse JSON. orjson is the fast path; when it refuses (numbers out of range, deep nesting)
    the standard parser tells what is wrong, so one bad event doesn't sink a batch."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as fast_error:
        reason = str(fast_error)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DomainError(
            f"The body is not valid UTF-8 (byte {exc.start})", code="invalid_json"
        ) from None
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_parse_float)
    except RecursionError:
        raise DomainError("The body is nested too deeply", code="invalid_json") from None
    except ValueError as exc:
        # json.JSONDecodeError says where; other ValueErrors (NaN, huge ints) say what.
        reason = str(exc) or reason
        raise DomainError(f"The body is not valid JSON: {reason}", code="invalid_json") from None
