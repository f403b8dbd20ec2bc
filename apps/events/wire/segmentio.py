"""segmentio: the wire format of Segment.com's HTTP tracking API (/v1/track, identify, page,
screen, group, alias, batch, import), parsed into IncomingEvents so Segment's SDKs work
unmodified. (Named after Segment's own packages, so that "segment" means a cohort only.)

Mapping: track -> its event; page -> `page_view`, screen -> `screen_view`; identify ->
`$identify` (with userId; links anonymousId) or `$set` (anonymous traits); group -> `$group`;
alias -> `$create_alias`. userId is the distinct_id when present, else anonymousId.
RudderStack's SDKs speak the same format, with identify traits in context.traits and their
`channel` and `_metadata` beside the context; its beacon endpoint is /beacon/v1/batch.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from apps.events.incoming import (
    Rejection,
    clean_distinct_id,
    clean_object,
    json_type,
    parse_timestamp,
)
from apps.events.wire.base import Envelope, ParsedBatch, TooLarge
from apps.events.wire.native import parse_event
from cdp.errors import DomainError

MAX_MESSAGE_BYTES = 32 * 1024  # one call, or one message of a batch
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2500  # 500 KB of messages can't hold more than this many useful ones
TYPES = ("track", "identify", "page", "screen", "group", "alias")
PAGE_FIELDS = ("url", "path", "title", "referrer", "search")
DEFAULT_GROUP_TYPE = "company"
# Our field names as Segment's clients know them, for rejections.
SEGMENTIO_FIELDS = {
    "event_name": "event",
    "distinct_id": "userId",
    "message_id": "messageId",
    "sent_at": "sentAt",
}
# Segment's own docs show dates like "2015-2-02T00:30:08.276Z": pad them to ISO-8601.
_UNPADDED_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?=$|[T ])")


def _merged(shared: Any, own: dict[str, Any]) -> dict[str, Any]:
    """A batch's context/integrations merged into a message's: the message wins, key by key,
    nested objects included."""
    if not isinstance(shared, dict) or not shared:
        return own
    merged = dict(shared)
    for key, value in own.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _context(message: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    context = dict(_merged(shared.get("context"), clean_object(message.get("context"), "context")))
    # The end user's agent (a server SDK sends its own in the header): enrichment reads it here.
    if "userAgent" in context and "user_agent" not in context:
        context["user_agent"] = context.pop("userAgent")
    # RudderStack's SDKs send these at the top level of each message: kept with the context.
    if isinstance(message.get("channel"), str) and message["channel"]:
        context["channel"] = message["channel"]
    if isinstance(message.get("_metadata"), dict) and message["_metadata"]:
        context["_metadata"] = message["_metadata"]
    integrations = message.get("integrations")
    integrations = _merged(
        shared.get("integrations"), integrations if isinstance(integrations, dict) else {}
    )
    if integrations:
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
    are copied into context.page, where enrichment and sessions look for them."""
    properties = dict(properties)
    if kind == "page":
        page = dict(context["page"]) if isinstance(context.get("page"), dict) else {}
        for name in PAGE_FIELDS:
            if name in properties:
                page.setdefault(name, properties[name])
        if page:
            context["page"] = page
    for name in ("name", "category"):
        if isinstance(message.get(name), str) and message[name]:
            properties[f"{kind}_{name}"] = message[name]
    return properties


def _time(value: Any) -> Any:
    if isinstance(value, str):
        match = _UNPADDED_DATE.match(value)
        if match:
            year, month, day = match.groups()
            value = f"{year}-{int(month):02d}-{int(day):02d}{value[match.end() :]}"
    return value


def _timestamps(message: dict[str, Any], shared: dict[str, Any]) -> tuple[Any, Any]:
    """(when it happened as the client saw it, the client's send time) for clock-skew correction.

    As Segment does: a `timestamp` passed alone is the original timestamp, corrected by
    receivedAt - sentAt when sentAt is sent and used as is otherwise. A message that has both
    (one replayed from a Segment export) carries its already-corrected timestamp: used as is."""
    original, timestamp = message.get("originalTimestamp"), message.get("timestamp")
    sent_at = message.get("sentAt") or shared.get("sentAt")
    if timestamp not in (None, "") and original not in (None, ""):
        return _time(timestamp), None
    return _time(original if original not in (None, "") else timestamp), _time(sent_at)


def _check_size(message: dict[str, Any]) -> None:
    try:
        size = len(orjson.dumps(message))
    except TypeError:
        return  # not serializable (out-of-range number, too deep): parse_event says why
    if size > MAX_MESSAGE_BYTES:
        raise TooLarge(None, f"the message is {size} bytes; the limit is {MAX_MESSAGE_BYTES}")


def to_native(message: Any, shared: dict[str, Any], call: str | None = None) -> dict[str, Any]:
    """One Segment message as a native event (validated further by the native parser)."""
    if not isinstance(message, dict):
        raise Rejection(None, f"a message must be an object, not {json_type(message)}")
    _check_size(message)
    kind = call or message.get("type")
    if kind not in TYPES:
        raise Rejection("type", f"must be one of {', '.join(TYPES)}")
    distinct_id, anonymous_id = _distinct_id(message)
    context = _context(message, shared)
    properties = clean_object(message.get("properties"), "properties")
    traits = clean_object(message.get("traits"), "traits")
    if kind == "identify" and not traits:
        # RudderStack's SDKs send a user's traits in context.traits only. On other calls
        # (analytics-js sends them with every event) they stay in the context and set nothing.
        traits = clean_object(context.get("traits"), "context.traits")
    category = kind
    if kind == "track":
        event_name = message.get("event")
        if event_name in (None, ""):
            raise Rejection("event", "is required for a track call")
    elif kind in ("page", "screen"):
        event_name = "page_view" if kind == "page" else "screen_view"
        properties = _page_properties(message, properties, context, kind)
    elif kind == "identify":
        if message.get("userId") in (None, ""):
            event_name, properties = "$set", {"$set": traits}
        else:
            event_name = "$identify"
            properties = {"$set": traits}
            if anonymous_id and anonymous_id != distinct_id:
                properties["$anonymous_id"] = anonymous_id
    elif kind == "group":
        group_id = message.get("groupId")
        if group_id in (None, "") or isinstance(group_id, bool):
            raise Rejection("groupId", "is required for a group call")
        if not isinstance(group_id, str | int):
            raise Rejection("groupId", f"must be a string, not {json_type(group_id)}")
        group_type = context.get("groupType")
        if not isinstance(group_type, str) or not group_type:
            group_type = DEFAULT_GROUP_TYPE
        event_name = "$group"
        properties = {"group_key": group_type, "group_id": str(group_id), "$group_set": traits}
    else:  # alias
        previous = clean_distinct_id(message.get("previousId"), "previousId")
        event_name, category = "$create_alias", "identify"
        properties = {"alias": previous}
    timestamp, sent_at = _timestamps(message, shared)
    with_profile = _profile_flag(kind, properties, context)
    return {
        "profile": with_profile,
        "event_name": event_name,
        "distinct_id": distinct_id,
        "category": category,
        "properties": properties,
        "context": context,
        "message_id": message.get("messageId"),
        "timestamp": timestamp,
        "sent_at": sent_at,
    }


# Identity calls: they exist to act on a profile.
_PROFILE_CALLS = ("identify", "group", "alias")


def _profile_flag(kind: str, properties: dict[str, Any], context: dict[str, Any]) -> bool | None:
    """Whether the message makes or updates a profile: PostHog's
    `properties.$process_person_profile` or `context.profile`, false for a personless event;
    None when it says nothing (the source decides). Identity calls always do."""
    flag = None
    for field, value in (
        ("properties.$process_person_profile", properties.get("$process_person_profile")),
        ("context.profile", context.get("profile")),
    ):
        if value is None:
            continue
        if not isinstance(value, bool):
            raise Rejection(field, f"must be true or false, not {json_type(value)}")
        flag = value if flag is None else flag and value
    if kind in _PROFILE_CALLS:
        if flag is False:
            raise Rejection(
                "context.profile",
                "identify, group and alias calls always act on a profile: drop the "
                "personless flag, or send a track call",
            )
        return True
    return flag


def _shared(payload: dict[str, Any]) -> dict[str, Any]:
    """What a batch's messages share: context and integrations (merged), sentAt."""
    shared = {key: payload.get(key) for key in ("context", "integrations", "sentAt")}
    for key in ("context", "integrations"):
        if shared[key] is not None and not isinstance(shared[key], dict):
            raise DomainError(f"must be an object, not {json_type(shared[key])}", field=key)
    try:
        parse_timestamp(_time(shared["sentAt"]), "sentAt")
    except Rejection as exc:
        raise DomainError(exc.error, field=exc.field) from None
    return shared


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
        shared = _shared(payload)
    else:
        messages, shared = [payload], {}
    result = ParsedBatch()
    for index, message in enumerate(messages):
        try:
            raw = to_native(message, shared, call)
            # Segment properties are the customer's own: nothing is stripped from them.
            result.events.append(parse_event(raw, index, envelope, result, strip_reserved=False))
        except Rejection as exc:
            exc.field = SEGMENTIO_FIELDS.get(exc.field or "", exc.field)
            result.reject(index, exc)
    return result
