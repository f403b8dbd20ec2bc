"""What every wire format receives from the request, and what it hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apps.events.incoming import IncomingEvent, Rejection, Warning


@dataclass(slots=True)
class Envelope:
    """What the server knows about a request, apart from its body."""

    source_id: str
    received_at: datetime
    ip: str = ""
    user_agent: str = ""
    # The request carried `Sec-GPC: 1` (Global Privacy Control): events get context.gpc, which
    # the consents gate reads as a denial of the consent types configured for it.
    gpc: bool = False
    max_event_bytes: int = 32 * 1024
    max_future: timedelta = timedelta(days=1)


@dataclass(slots=True)
class ParsedBatch:
    events: list[IncomingEvent] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[Warning] = field(default_factory=list)
    # True when every rejection was for size: the request answers 413 rather than 400.
    only_too_large: bool = True

    def reject(self, index: int, rejection: Rejection) -> None:
        self.rejected.append({"index": index, "field": rejection.field, "error": rejection.error})
        if not isinstance(rejection, TooLarge):
            self.only_too_large = False


class TooLarge(Rejection):
    """An event over the per-event size limit."""
