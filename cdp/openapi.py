"""The tracking endpoints in the OpenAPI schema.

They are plain Django views (fast path, write-key auth), so drf-spectacular cannot introspect
them; this postprocessing hook describes them next to the management API."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string", "nullable": True},
            },
            "required": ["code", "message", "field"],
        }
    },
}

_EVENT = {
    "type": "object",
    "required": ["event_name", "distinct_id"],
    "properties": {
        "event_name": {"type": "string", "maxLength": 255},
        "distinct_id": {"type": "string", "maxLength": 200},
        "timestamp": {
            "type": "string",
            "format": "date-time",
            "description": "When it happened; the time received when absent.",
        },
        "sent_at": {
            "type": "string",
            "format": "date-time",
            "description": "When the client sent it: corrects the client's clock skew.",
        },
        "properties": {"type": "object", "additionalProperties": True},
        "category": {"type": "string", "default": "custom"},
        "message_id": {"type": "string", "description": "Dedupe key, unique per source."},
        "session_id": {"type": "string"},
        "context": {
            "type": "object",
            "additionalProperties": True,
            "description": "page, referrer, user_agent, locale, timezone, campaign (UTM), screen",
        },
    },
}

_TRACK_RESULT = {
    "type": "object",
    "properties": {
        "accepted": {"type": "integer"},
        "duplicates": {"type": "integer"},
        "rejected": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "field": {"type": "string", "nullable": True},
                    "error": {"type": "string"},
                },
            },
        },
        "warnings": {"type": "array", "items": {"type": "object"}},
    },
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


TRACK_PATHS: dict[str, Any] = {
    "/api/track": {
        "post": {
            "operationId": "track",
            "tags": ["tracking"],
            "summary": "Track one event or a batch of events",
            "description": (
                "Authenticate with the source's write key: the HTTP Basic username, an "
                "X-Write-Key header, or `writeKey` in the body. Good events are stored even "
                "when others in the batch are rejected. `Content-Encoding: gzip` is accepted."
            ),
            "security": [{"writeKeyBasic": []}, {"writeKeyHeader": []}, {}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/TrackEvent"},
                                {
                                    "type": "object",
                                    "required": ["batch"],
                                    "properties": {
                                        "batch": {
                                            "type": "array",
                                            "maxItems": 1000,
                                            "items": {"$ref": "#/components/schemas/TrackEvent"},
                                        },
                                        "sent_at": {"type": "string", "format": "date-time"},
                                        "writeKey": {"type": "string"},
                                    },
                                },
                            ]
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "The events were stored (and will be processed).",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/TrackResult"}}
                    },
                },
                "400": _error("Not JSON, or no valid event (the reasons are in the body)."),
                "401": _error("Missing, unknown or disabled write key."),
                "413": _error("Over 32 KB per event or 1 MB per request."),
                "415": _error("Not application/json."),
                "429": _error("The source is over its rate limit (see Retry-After)."),
                "503": _error("Storage is unavailable; nothing was stored, retry."),
            },
        }
    }
}


def add_tracking_endpoints(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add the tracking paths and write-key auth."""
    result.setdefault("paths", {}).update(TRACK_PATHS)
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(
        {"Error": _ERROR, "TrackEvent": _EVENT, "TrackResult": _TRACK_RESULT}
    )
    components.setdefault("securitySchemes", {}).update(
        {
            "writeKeyBasic": {
                "type": "http",
                "scheme": "basic",
                "description": "The write key as the username, no password.",
            },
            "writeKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Write-Key"},
        }
    )
    return result
