"""The errors the SDK raises: bad arguments at call time, and failures the server reported."""

from __future__ import annotations

from typing import Any


class CdpError(Exception):
    """Base class of the SDK's own errors."""


class APIError(CdpError):
    """The server refused a request, or it could not be reached after every retry.

    `status` is the HTTP status (0 when the server was not reached), `code` and `field` come
    from the server's error body (`{"error": {"code", "message", "field"}}`)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str = "",
        field: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field
        self.body = body

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        status = f"HTTP {self.status} " if self.status else ""
        code = f"{self.code}: " if self.code else ""
        return f"{status}{code}{self.message}{where}"

    @property
    def retryable(self) -> bool:
        """Whether sending the same request again later may succeed."""
        return self.status == 0 or self.status == 429 or self.status >= 500


class RejectedError(APIError):
    """The server stored a batch but refused some of its events (each with its reason)."""

    def __init__(self, rejected: list[dict[str, Any]], *, accepted: int) -> None:
        first = rejected[0] if rejected else {}
        super().__init__(
            f"{len(rejected)} event(s) refused by the server, first: {first.get('error')}",
            status=200,
            code="rejected",
            field=first.get("field"),
            body=rejected,
        )
        self.rejected = rejected
        self.accepted = accepted


class ClientClosedError(CdpError, RuntimeError):
    """A call on a client after shutdown()."""
