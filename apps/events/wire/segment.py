"""The Segment HTTP tracking API (/v1/track, identify, page, screen, group, alias, batch,
import), parsed into IncomingEvents so Segment's SDKs work unmodified.

Mapping: track -> its event; page -> `page_view`, screen -> `screen_view`; identify ->
`$identify` (with userId; links anonymousId) or `$set` (anonymous traits); group -> `$group`;
alias -> `$create_alias`. userId is the distinct_id when present, else anonymousId.
"""

from __future__ import annotations

from typing import Any

from apps.events.incoming import Rejection, clean_distinct_id, clean_object, json_type
from apps.events.wire.base import Envelope, ParsedBatch
from apps.events.wire.native import parse_event
from cdp.errors import DomainError

MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2500  # 500 KB of messages can't hold more than this many useful ones
TYPES = ("track", "identify", "page", "screen", "group", "alias")
PAGE_FIELDS = ("url", "path", "title", "referrer", "search")
DEFAULT_GROUP_TYPE = "company"


def _context(message: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    context = clean_object(message.get("context"), "context")
    if shared.get("context"):
        context = {**shared["context"], **context}
    context = dict(context)
    if "userAgent" in context and "user_agent" not in context:
        context["user_agent"] = context.pop("userAgent")
    integrations = message.get("integrations", shared.get("integrations"))
    if isinstance(integrations, dict) and integrations:
        context["integrations"] = integrations
    return context


def _distinct_id(message: dict[str, Any]) -> tuple[str, str]:
    """(distinct_id, anonymous_id): userId wins; either is enough."""
    user_id, anonymous_id = message.get("userId"), message.get("anonymousId")
    if user_id in (None, "") and anonymous_id in (None, ""):
        raise Rejection("userId", "userId or anonymousId is required")
    anon = clean_distinct_id(anonymous_id, "anonymousId") if anonymous_id not in (None, "") else ""
    if user_id in (None, ""):
        return anon, anon
    return clean_distinct_id(user_id, "userId"), anon


def _page_properties(
    message: dict[str, Any], properties: dict[str, Any], context: dict[str, Any], kind: str
) -> dict[str, Any]:
    """Page and screen calls: name/category become properties; page fields (url, referrer...)
    go into context.page, where enrichment and sessions look for them."""
    properties = dict(properties)
    if kind == "page":
        page = dict(context.get("page") or {}) if isinstance(context.get("page"), dict) else {}
        for name in PAGE_FIELDS:
            if name in properties:
                page.setdefault(name, properties.pop(name))
        if page:
            context["page"] = page
    for name in ("name", "category"):
        if isinstance(message.get(name), str) and message[name]:
            properties[f"{kind}_{name}"] = message[name]
    return properties


def to_native(message: Any, shared: dict[str, Any], call: str | None = None) -> dict[str, Any]:
    """One Segment message as a native event (validated further by the native parser)."""
    if not isinstance(message, dict):
        raise Rejection(None, f"a message must be an object, not {json_type(message)}")
    kind = call or message.get("type")
    if kind not in TYPES:
        raise Rejection("type", f"must be one of {', '.join(TYPES)}")
    distinct_id, anonymous_id = _distinct_id(message)
    context = _context(message, shared)
    properties = clean_object(message.get("properties"), "properties")
    traits = clean_object(message.get("traits"), "traits")
    category = kind
    if kind == "track":
        event_name = message.get("event")
        if event_name in (None, ""):
            raise Rejection("event", "is required for a track call")
    elif kind in ("page", "screen"):
        event_name = "page_view" if kind == "page" else "screen_view"
        properties = _page_properties(message, properties, context, kind)
    elif kind == "identify":
        category = "identify"
        if message.get("userId") in (None, ""):
            event_name, properties = "$set", {"$set": traits}
        else:
            event_name = "$identify"
            properties = {"$set": traits}
            if anonymous_id and anonymous_id != distinct_id:
                properties["$anonymous_id"] = anonymous_id
    elif kind == "group":
        group_id = message.get("groupId")
        if group_id in (None, "") or not isinstance(group_id, str | int):
            raise Rejection("groupId", "is required for a group call")
        group_type = context.get("groupType") or DEFAULT_GROUP_TYPE
        event_name = "$group"
        properties = {"group_key": group_type, "group_id": str(group_id), "$group_set": traits}
    else:  # alias
        previous = clean_distinct_id(message.get("previousId"), "previousId")
        event_name, category = "$create_alias", "identify"
        properties = {"alias": previous}
    return {
        "event_name": event_name,
        "distinct_id": distinct_id,
        "category": category,
        "properties": properties,
        "context": context,
        "message_id": message.get("messageId"),
        # originalTimestamp is the device's time; timestamp an explicit override.
        "timestamp": message.get("originalTimestamp") or message.get("timestamp"),
        "sent_at": message.get("sentAt") or shared.get("sentAt"),
    }


def parse(payload: Any, envelope: Envelope, *, call: str | None) -> ParsedBatch:
    """A single call (/v1/track...) or a batch (/v1/batch, /v1/import)."""
    if not isinstance(payload, dict):
        raise DomainError(
            f"The body must be a JSON object, not {json_type(payload)}", code="invalid_body"
        )
    if call is None:
        messages = payload.get("batch")
        if not isinstance(messages, list) or not messages:
            raise DomainError("must be a non-empty array of messages", field="batch")
        if len(messages) > MAX_BATCH_MESSAGES:
            raise DomainError(
                f"has more than {MAX_BATCH_MESSAGES} messages",
                field="batch",
                code="batch_too_large",
                status_code=413,
            )
        shared = {key: payload.get(key) for key in ("context", "integrations", "sentAt")}
        if shared["context"] is not None and not isinstance(shared["context"], dict):
            raise DomainError("must be an object", field="context")
    else:
        messages, shared = [payload], {}
    result = ParsedBatch()
    for index, message in enumerate(messages):
        try:
            raw = to_native(message, shared, call)
            # Segment properties are the customer's own: nothing is stripped from them.
            result.events.append(parse_event(raw, index, envelope, result, strip_reserved=False))
        except Rejection as exc:
            result.reject(index, exc)
    return result
