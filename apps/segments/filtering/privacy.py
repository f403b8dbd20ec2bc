"""Whether a filter reads private traits: such a filter, run by someone without the
permission to see them, would tell them the values (a preview count per guessed character)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from apps.segments.filtering.errors import FilterError
from apps.segments.filtering.paths import Path, PathError, parse_path
from apps.segments.filtering.tree import (
    And,
    Filter,
    Node,
    Not,
    Or,
    Performed,
    Property,
    parse_filter,
)
from cdp.privacy import REDACTED


def path_is_private(path: Path) -> bool:
    """private_traits.*, and the raw private payloads of identify/people events
    (`event.properties."$set_private"`, private names inside `$set` / `$set_once`)."""
    if path.kind == "private_traits":
        return True
    if path.kind == "event_json" and path.column == "properties" and path.keys:
        first = path.keys[0]
        if first == "$set_private":
            return True
        if first in ("$set", "$set_once"):
            return len(path.keys) == 1 or path.keys[1] in settings.CDP_PRIVATE_TRAITS
    return False


def _node_is_private(node: Node) -> bool:
    if isinstance(node, And | Or):
        return any(_node_is_private(child) for child in node.children)
    if isinstance(node, Not):
        return _node_is_private(node.child)
    if isinstance(node, Property):
        return path_is_private(node.path)
    if isinstance(node, Performed):
        return node.where is not None and _node_is_private(node.where)
    return False


def filter_references_private(tree: Any) -> bool:
    """True when the filter (a Filter, or its JSON tree) reads a private trait. A tree that
    does not parse reads nothing (its validation reports it)."""
    if tree is None:
        return False
    if not isinstance(tree, Filter):
        try:
            tree = parse_filter(tree, scope="event")
        except FilterError:
            return False
    return _node_is_private(tree.root)


def filter_redacted(tree: Any) -> Any:
    """The JSON tree with the values compared to private traits replaced (for users who may
    not see them: `private_traits.email is "ann@example.com"` names a person)."""
    if isinstance(tree, list):
        return [filter_redacted(item) for item in tree]
    if not isinstance(tree, dict):
        return tree
    out = {key: filter_redacted(value) for key, value in tree.items()}
    prop = tree.get("property")
    if isinstance(prop, str):
        try:
            private = path_is_private(parse_path(prop))
        except PathError:
            private = False
        if private and "value" in out:
            out["value"] = REDACTED
        if private and isinstance(out.get("item"), dict) and "value" in out["item"]:
            out["item"] = {**out["item"], "value": REDACTED}
    return out
