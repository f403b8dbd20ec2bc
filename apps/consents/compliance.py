"""Data-compliance rules applied to an event's values: paths, and the remove, hash and mask
actions. Pure functions over plain data, run by the ingest gate before anything is stored."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from cdp.local_secrets import generate_hash_secret, local_secret

HASH_ENV_VAR = "CDP_HASH_SECRET"
MAX_PATH_PARTS = 20
_ALNUM = re.compile(r"[^\W_]")
_ASCII_STARS = str.maketrans(
    dict.fromkeys("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", "*")
)
_PART = re.compile(r"^(?P<key>[^\[\]]+)(?P<each>\[\])?$")
# `traits.x` names the traits an identify call sets, public and private, wherever they come in.
TRAIT_ROOTS = (("properties", "$set"), ("properties", "$set_private"), ("context", "traits"))


class PathError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class CompiledPath:
    """A rule's path as the key sequences it reaches from the event's root."""

    text: str
    routes: tuple[tuple[str, ...], ...]


def path_compile(text: str) -> CompiledPath:
    """`properties.user.email`, `properties.items[].sku` (`[]` is optional: a list met on the
    way is walked item by item), `context.traits.email`, `traits.email`. A path with no root
    reads properties."""
    text = (text or "").strip()
    if not text:
        raise PathError("A path is required, e.g. properties.email")
    parts: list[str] = []
    for raw in text.split("."):
        match = _PART.match(raw.strip())
        if not match:
            raise PathError(f"{text!r}: {raw!r} is not a key (keys are separated by dots)")
        parts.append(match.group("key"))
    if len(parts) > MAX_PATH_PARTS:
        raise PathError(f"{text!r} is deeper than {MAX_PATH_PARTS} keys")
    if parts[0] == "traits":
        if len(parts) < 2:
            raise PathError("traits.<name>: name the trait")
        routes = tuple((*root, *parts[1:]) for root in TRAIT_ROOTS)
    elif parts[0] in ("properties", "context"):
        if len(parts) < 2:
            raise PathError(f"{text!r}: name a key under {parts[0]}")
        routes = (tuple(parts),)
    else:
        routes = (("properties", *parts),)
    return CompiledPath(text=text, routes=routes)


# --- the actions --------------------------------------------------------------------------------


def hash_secret() -> bytes:
    secret = settings.CDP_HASH_SECRET
    if not secret and settings.DEBUG:
        secret = local_secret(HASH_ENV_VAR, settings.CDP_LOCAL_ENV_FILE, generate_hash_secret)
    if not secret:
        raise ImproperlyConfigured(
            f"Set {HASH_ENV_VAR} to 32+ random characters: compliance rules hash with it."
        )
    return secret.encode()


def _hasher(secret: bytes) -> Callable[[Any], Any]:
    """The hash action: HMAC-SHA256 of a value under the install's secret (text as it is,
    anything else as its JSON), as hex, so the same value always hashes the same and hashed
    ids still join; null stays null.

    HMAC-SHA256 (RFC 2104) with the key's inner and outer pads hashed once: each value then
    costs two copies of a SHA-256 state, about half of what `hmac.new(...).copy()` does (this
    runs on every hashed value of every event)."""
    block = hashlib.sha256().block_size
    key = hashlib.sha256(secret).digest() if len(secret) > block else secret
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def hash_one(value: Any) -> Any:
        if value is None:  # null stays null: nothing to hide
            return None
        step = inner.copy()
        step.update(value.encode() if isinstance(value, str) else orjson.dumps(value))
        result = outer.copy()
        result.update(step.digest())
        return result.hexdigest()

    return hash_one


def mask_value(value: Any) -> Any:
    """Keep the shape, hide the content: `john@example.com` -> `j***@example.com`; other text
    keeps its first character and separators; numbers become stars of their length; objects
    and lists are masked value by value; null stays null."""
    if isinstance(value, str):  # text first, and inline: most masked values are text
        if "@" in value:
            local, _, domain = value.partition("@")
            if local and "." in domain:
                return local[0] + "*" * (len(local) - 1) + "@" + domain
        if len(value) <= 1:
            return "*" * len(value)
        # Keep the first character and the separators: "+1 555-0100" -> "+* ***-****".
        rest = value[1:]
        stars = rest.translate(_ASCII_STARS) if rest.isascii() else _ALNUM.sub("*", rest)
        return value[0] + stars
    if value is None:
        return None
    if isinstance(value, bool):
        return "*"
    if isinstance(value, int | float):
        return "*" * len(str(value))
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    return "*"


Transform = Callable[[Any], Any]
REMOVE = object()


def transform_for(action: str, secret: bytes | None) -> Transform:
    if action == "remove":
        return lambda value: REMOVE
    if action == "hash":
        assert secret is not None
        return _hasher(secret)
    if action == "mask":
        return mask_value
    raise ValueError(f"unknown compliance action {action!r}")


Applier = Callable[[Any], bool]
_MISSING = object()
# Values whose transform is remembered within a batch: immutable scalars, keyed with their type
# (1, 1.0 and True are equal keys, but hash to different digests).
_REMEMBERED = (str, int, float)


def remembering(transform: Transform) -> Transform:
    """The transform, answering a value it has already seen from memory: a batch repeats its
    values (a person's e-mail and phone in each of their events), and HMACs and masks cost more
    than a lookup. Make one per batch: the memory lives as long as the batch it serves."""
    memory: dict[tuple[type, Any], Any] = {}

    def remembered(value: Any) -> Any:
        kind = type(value)
        if kind not in _REMEMBERED:
            return transform(value)
        key = (kind, value)
        found = memory.get(key, _MISSING)
        if found is _MISSING:
            found = memory[key] = transform(value)
        return found

    return remembered


def path_applier(keys: tuple[str, ...], transform: Transform) -> Applier:
    """A function of a root (properties or context) that applies `transform` to every value at
    `keys` under it, and says whether it found any. A list met on the way is walked item by
    item, each item taking the same key; a missing key changes nothing. Compiled once per
    rule into one closure per key, because it runs for every rule on every event."""
    key = keys[0]
    if len(keys) == 1:

        def at_last_key(node: Any) -> bool:
            kind = type(node)
            if kind is dict:
                if key not in node:
                    return False
                new = transform(node[key])
                if new is REMOVE:
                    del node[key]
                else:
                    node[key] = new
                return True
            if kind is list:
                found = False
                for item in node:
                    if type(item) is dict:  # the usual item, without a call per item
                        if key in item:
                            new = transform(item[key])
                            if new is REMOVE:
                                del item[key]
                            else:
                                item[key] = new
                            found = True
                    elif at_last_key(item):
                        found = True
                return found
            return False

        return at_last_key

    below = path_applier(keys[1:], transform)

    def at_key(node: Any) -> bool:
        kind = type(node)
        if kind is dict:
            child = node.get(key, _MISSING)
            return child is not _MISSING and below(child)
        if kind is list:
            found = False
            for item in node:
                if at_key(item):
                    found = True
            return found
        return False

    return at_key
