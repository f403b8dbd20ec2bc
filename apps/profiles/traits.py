"""Trait operations with the semantics Mixpanel users expect ($set, $set_once, $add, $append,
$union, $remove, $unset), and the merge rule for two profiles' traits.

Every write is stamped in `trait_meta` ("traits.plan" -> {"at": ISO time, "once": bool}) so a
merge can keep the last write, or the oldest for set_once traits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings

# The order several operations in one call are applied in.
OPERATIONS = ("set_once", "set", "increment", "append", "union", "remove", "unset")


class TraitTarget:
    """The two trait namespaces of a profile (or a group's properties) with their metadata."""

    def __init__(
        self,
        public: dict[str, Any],
        private: dict[str, Any] | None,
        meta: dict[str, Any],
    ) -> None:
        self.public = public
        self.private = private
        self.meta = meta

    def _where(self, key: str, private: bool | None) -> tuple[dict[str, Any], str]:
        if self.private is not None and (
            private or (private is None and key in settings.CDP_PRIVATE_TRAITS)
        ):
            return self.private, f"private_traits.{key}"
        return self.public, f"traits.{key}"

    def get(self, key: str, private: bool | None = None) -> tuple[bool, Any]:
        store, _ = self._where(key, private)
        return key in store, store.get(key)

    def write(
        self, key: str, value: Any, at: datetime, *, once: bool = False, private: bool | None = None
    ) -> None:
        store, meta_key = self._where(key, private)
        store[key] = value
        self.meta[meta_key] = {"at": at.isoformat(), "once": once}

    def delete(self, key: str, at: datetime, private: bool | None = None) -> None:
        store, meta_key = self._where(key, private)
        store.pop(key, None)
        self.meta.pop(meta_key, None)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (not isinstance(value, float) or math.isfinite(value))
    )


def apply_operations(
    target: TraitTarget, ops: dict[str, Any], at: datetime, *, private: bool | None = None
) -> dict[str, str]:
    """Apply people operations in OPERATIONS order. Returns {"op.key": error} for the keys
    that could not be applied (the others are)."""
    errors: dict[str, str] = {}
    for op in OPERATIONS:
        values = ops.get(op)
        if values is None:
            continue
        if op == "unset":
            keys = values if isinstance(values, list) else list(values)
            for key in keys:
                if not isinstance(key, str):
                    errors[f"unset.{key}"] = "keys to unset must be strings"
                    continue
                target.delete(key, at, private)
            continue
        for key, value in values.items():
            error = _apply_one(target, op, key, value, at, private)
            if error:
                errors[f"{op}.{key}"] = error
    return errors


def _apply_one(
    target: TraitTarget, op: str, key: str, value: Any, at: datetime, private: bool | None
) -> str | None:
    exists, current = target.get(key, private)
    if op == "set":
        target.write(key, value, at, private=private)
    elif op == "set_once":
        if not exists:
            target.write(key, value, at, once=True, private=private)
    elif op == "increment":
        if not _is_number(value):
            return f"can only increment by a number, not {type(value).__name__}"
        if exists and current is not None and not _is_number(current):
            return f"the trait is {type(current).__name__}, not a number: can't increment it"
        target.write(key, (current or 0) + value, at, private=private)
    elif op in ("append", "union", "remove"):
        if op == "remove" and not exists:
            return None  # nothing to remove from
        if exists and current is not None and not isinstance(current, list):
            return f"the trait is {type(current).__name__}, not a list"
        items = list(current or [])
        new = value if isinstance(value, list) and op != "append" else [value]
        if op == "append":
            items.extend(new)
        elif op == "union":
            items.extend(v for v in new if v not in items)
        else:
            items = [v for v in items if v not in new]
        target.write(key, items, at, private=private)
    return None


def _when(meta: dict[str, Any] | None) -> datetime | None:
    try:
        return datetime.fromisoformat((meta or {})["at"])
    except (KeyError, TypeError, ValueError):
        return None


def _newer(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Is write a newer than write b? A write without metadata (old data) is the oldest."""
    when_a, when_b = _when(a), _when(b)
    if when_a is None:
        return False
    return when_b is None or when_a > when_b


def merge_into(survivor: TraitTarget, merged: TraitTarget) -> None:
    """Merge traits: the last write wins; when either side was set_once, the oldest wins."""
    for namespace, survivor_store, merged_store in (
        ("traits", survivor.public, merged.public),
        ("private_traits", survivor.private, merged.private),
    ):
        if survivor_store is None or merged_store is None:
            continue
        for key, value in merged_store.items():
            meta_key = f"{namespace}.{key}"
            theirs = merged.meta.get(meta_key)
            ours = survivor.meta.get(meta_key)
            if key not in survivor_store:
                take = True
            elif (theirs or {}).get("once") or (ours or {}).get("once"):
                take = _newer(ours, theirs)  # keep the oldest
            else:
                take = _newer(theirs, ours)
            if take:
                survivor_store[key] = value
                if theirs is not None:
                    survivor.meta[meta_key] = theirs


_MISSING = object()


def _write_of(
    store: dict[str, Any], meta: dict[str, Any], key: str, meta_key: str
) -> tuple[Any, Any]:
    return (store.get(key, _MISSING), meta.get(meta_key))


def unmerge_from(current: TraitTarget, *, before: TraitTarget, taken: TraitTarget) -> None:
    """Undo merge_into: a trait the survivor holds because the merge took it from the other
    profile (same value, same write) goes back to what the survivor had before the merge.
    Traits written since the merge stay."""
    for namespace, store, old, theirs in (
        ("traits", current.public, before.public, taken.public),
        ("private_traits", current.private, before.private, taken.private),
    ):
        if store is None or old is None or theirs is None:
            continue
        for key in list(store):
            meta_key = f"{namespace}.{key}"
            write = (store[key], current.meta.get(meta_key))
            if _write_of(theirs, taken.meta, key, meta_key) != write:
                continue
            if _write_of(old, before.meta, key, meta_key) == write:
                continue
            if key in old:
                store[key] = old[key]
                if meta_key in before.meta:
                    current.meta[meta_key] = before.meta[meta_key]
            else:
                del store[key]
                current.meta.pop(meta_key, None)


def validate_operations(ops: dict[str, Any], allowed: Iterable[str] = OPERATIONS) -> dict[str, str]:
    """Shape errors, before anything is applied: {"op": reason}."""
    errors = {}
    for op in allowed:
        if op not in ops or ops[op] is None:
            continue
        value = ops[op]
        if op == "unset":
            if not isinstance(value, list | dict):
                errors[op] = "must be a list of trait names"
        elif not isinstance(value, dict):
            errors[op] = "must be an object of trait names to values"
    return errors
