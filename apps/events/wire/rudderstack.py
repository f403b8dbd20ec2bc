"""RudderStack's control-plane answer that its browser SDK (analytics-js v3) loads before it
sends anything: GET <configUrl>/sourceConfig/. Its events use the Segment format (segmentio)."""

from __future__ import annotations

from typing import Any

from apps.sources.models import EventSource


def source_config(source: EventSource) -> dict[str, Any]:
    """What analytics-js needs to start: the source, enabled, no device-mode destinations (every
    event goes to this server) and the SDK's own error and metrics reporting off."""
    return {
        "isHosted": False,
        "source": {
            "id": str(source.pk),
            "name": source.name,
            "writeKey": source.write_key,
            "enabled": source.enabled,
            "deleted": False,
            "config": {
                "statsCollection": {
                    "errors": {"enabled": False},
                    "metrics": {"enabled": False},
                },
            },
            "destinations": [],
            "createdAt": source.created_at.isoformat(),
            "updatedAt": source.updated_at.isoformat(),
        },
    }
