"""POST /api/consent: a person's consent decisions, authenticated by the source's write key."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

from apps.consents import gates, selectors, services
from apps.consents.models import ConsentChannel
from apps.events.incoming import Rejection, clean_distinct_id, parse_timestamp
from apps.events.tracking import check_rate, json_response, tracking_endpoint
from apps.events.wire.base import Envelope
from apps.sources.models import EventSource
from cdp.errors import DomainError

_STATES = {True: True, False: False, "granted": True, "denied": False}


def _decisions(payload: dict[str, Any]) -> dict[str, bool]:
    types = selectors.consent_types_enabled()
    decisions: dict[str, bool] = {}
    if "all" in payload:
        if not isinstance(payload["all"], bool):
            raise DomainError("all is true (grant every consent type) or false", field="all")
        decisions.update(dict.fromkeys(types, payload["all"]))
    if "categories" in payload:
        found = gates.categories_to_decisions(payload["categories"], types)
        if found is None:
            raise DomainError(
                'categories is an object of category -> true, false, "granted" or "denied"',
                field="categories",
                code="malformed_categories",
            )
        decisions.update(found)
    consents = payload.get("consents")
    if consents is not None:
        if not isinstance(consents, dict):
            raise DomainError(
                'consents is an object of consent type -> true, false, "granted" or "denied"',
                field="consents",
            )
        for key, value in consents.items():
            if not isinstance(value, bool | str) or value not in _STATES:
                raise DomainError(
                    f'must be true, false, "granted" or "denied", not {value!r}',
                    field=f"consents.{key}",
                )
            decisions[str(key)] = _STATES[value]
    return decisions


@tracking_endpoint
def consent(
    request: HttpRequest, payload: Any, source: EventSource, envelope: Envelope
) -> HttpResponse:
    """{distinct_id, consents: {key: true|false}, categories: {...}, all: bool, timestamp?}"""
    if not isinstance(payload, dict):
        raise DomainError("The body is a JSON object", field=None, code="invalid")
    try:
        distinct_id = clean_distinct_id(payload.get("distinct_id"))
        at = parse_timestamp(payload.get("timestamp"), "timestamp")
    except Rejection as exc:
        raise DomainError(exc.error, field=exc.field) from None
    decisions = _decisions(payload)
    if not decisions and "all" in payload:
        # cdp.consent(true) with no consent type defined: nothing to record.
        return json_response({"changed": [], "unchanged": [], "consents": {}})
    if envelope.gpc:  # Global Privacy Control wins over a grant in the same request
        gpc_types = selectors.consent_types_enabled()
        decisions.update({k: False for k, t in gpc_types.items() if t.denied_by_gpc})
    check_rate(source, 1)
    channel = ConsentChannel.TRACKER if payload.get("library") == "cdp.js" else ConsentChannel.API
    if at is None or at > envelope.received_at:
        at = envelope.received_at
    result = services.consents_record(
        distinct_id=distinct_id,
        decisions=decisions,
        channel=channel,
        source=source,
        at=at,
    )
    profile = result.profile
    states = {
        c["key"]: c["state"]
        for c in (selectors.profile_consents(profile) if profile is not None else [])
    }
    return json_response(
        {"changed": result.changed, "unchanged": result.unchanged, "consents": states}
    )
