"""Bridges: how events reach a source. A small registry that other bridges plug into; each
bridge says which settings it takes (its `config_errors` checks them)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ConfigCheck = Callable[[dict[str, Any]], list[str]]


def _no_settings(config: dict[str, Any]) -> list[str]:
    return [f"this bridge takes no settings (got {sorted(config)})"] if config else []


@dataclass(frozen=True)
class Bridge:
    key: str
    name: str
    description: str
    config_errors: ConfigCheck = field(default=_no_settings, compare=False)


_REGISTRY: dict[str, Bridge] = {}


def bridge_register(bridge: Bridge) -> Bridge:
    if bridge.key in _REGISTRY:
        raise ValueError(f"A bridge with key {bridge.key!r} is already registered")
    _REGISTRY[bridge.key] = bridge
    return bridge


def bridge_get(key: str) -> Bridge:
    return _REGISTRY[key]


def bridge_choices() -> list[tuple[str, str]]:
    return [(bridge.key, bridge.name) for bridge in _REGISTRY.values()]


def bridge_config_errors(key: str, config: Any) -> list[str]:
    """What is wrong with a source's bridge settings, in words (empty: fine)."""
    if not isinstance(config, dict):
        return ["must be a JSON object"]
    bridge = _REGISTRY.get(key)
    if bridge is None:
        return [f"unknown bridge {key!r}"]
    return bridge.config_errors(config)


# --- the mapping language of the webhook and Redis-stream bridges -------------------------------
# A value is a path into the received JSON ("$" the whole body, "$.data.items[0].id"), a
# template holding paths ("order {{ $.data.id }}"), or a literal string.
PATH = re.compile(r"^\$((\.[A-Za-z0-9_$@-]+)|(\[\d{1,6}\]))*$")
TEMPLATE_PART = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
MAPPED_FIELDS = ("event_name", "distinct_id", "message_id", "timestamp", "properties")
SIGNATURE_KEYS = {"header", "prefix"}
# Where the webhook bridge looks for HMAC-SHA256(secret, body) unless `signature` says otherwise.
DEFAULT_SIGNATURE_HEADER = "X-Signature"
DEFAULT_SIGNATURE_PREFIX = "sha256="
MAX_EXPRESSION = 500
MAX_PROPERTIES = 200


def _expression_errors(name: str, value: Any) -> list[str]:
    if not isinstance(value, str):
        return [f"{name} must be a string (a path like $.data.id, a template or a literal)"]
    if len(value) > MAX_EXPRESSION:
        return [f"{name} is longer than {MAX_EXPRESSION} characters"]
    if value.startswith("$") and not PATH.match(value):
        return [f"{name}: {value!r} is not a path (write $.a.b or $.items[0].id)"]
    for inner in TEMPLATE_PART.findall(value):
        if not PATH.match(inner):
            return [f"{name}: {{{{ {inner} }}}} is not a path (write {{{{ $.a.b }}}})"]
    return []


def mapping_errors(config: dict[str, Any]) -> list[str]:
    """Errors of a mapping (the settings of the webhook and Redis-stream bridges)."""
    unknown = set(config) - {*MAPPED_FIELDS, "signature"}
    errors = [f"unknown setting {name!r}" for name in sorted(unknown)]
    if any(name in config for name in MAPPED_FIELDS):
        errors += [
            f"{name} is required by a mapping"
            for name in ("event_name", "distinct_id")
            if name not in config
        ]
    for name in ("event_name", "distinct_id", "message_id", "timestamp"):
        if name in config:
            errors += _expression_errors(name, config[name])
    properties = config.get("properties")
    if isinstance(properties, dict):
        if len(properties) > MAX_PROPERTIES:
            errors.append(f"properties maps more than {MAX_PROPERTIES} names")
        for prop, value in properties.items():
            errors += _expression_errors(f"properties.{prop}", value)
    elif properties is not None:
        errors += _expression_errors("properties", properties)
    signature = config.get("signature")
    if signature is not None:
        if not isinstance(signature, dict) or not isinstance(signature.get("header"), str):
            errors.append('signature must be {"header": "X-Signature", "prefix": "sha256="}')
        elif set(signature) - SIGNATURE_KEYS:
            errors.append(f"signature: unknown keys {sorted(set(signature) - SIGNATURE_KEYS)}")
    return errors


def signature_header(config: Any) -> tuple[str, str]:
    """The header a webhook source's signature is read from, and the prefix before its hex."""
    signature = config.get("signature") if isinstance(config, dict) else None
    signature = signature if isinstance(signature, dict) else {}
    prefix = signature.get("prefix", DEFAULT_SIGNATURE_PREFIX)
    return (
        str(signature.get("header") or DEFAULT_SIGNATURE_HEADER),
        prefix if isinstance(prefix, str) else DEFAULT_SIGNATURE_PREFIX,
    )


def _redis_stream_errors(config: dict[str, Any]) -> list[str]:
    if "signature" in config:
        return ["signature applies to the webhook bridge only"]
    return mapping_errors(config)


REST_API = bridge_register(
    Bridge(
        key="rest",
        name="REST API",
        description="Events posted over HTTP to the tracking endpoints with the write key.",
    )
)

INTERNAL = bridge_register(
    Bridge(
        key="internal",
        name="Internal",
        description="Events the platform emits itself: segment entries and exits, workflow events.",
    )
)

WEBHOOK = bridge_register(
    Bridge(
        key="webhook",
        name="Webhook",
        description=(
            "Any JSON posted to /api/bridges/webhook/<source id> (a third party's webhook), "
            "turned into events by the source's mapping; optionally HMAC-signed."
        ),
        config_errors=mapping_errors,
    )
)

REDIS_STREAM = bridge_register(
    Bridge(
        key="redis-stream",
        name="Redis stream",
        description=(
            "Entries of a Redis stream read by `manage.py run_bridge redis-stream` with a "
            "consumer group; the optional mapping applies to each entry's JSON."
        ),
        config_errors=_redis_stream_errors,
    )
)
