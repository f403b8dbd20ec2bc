"""The filter tree: node types, validation of the JSON form, and what a filter references."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Union

from apps.segments.filtering import operators as ops
from apps.segments.filtering.errors import FilterError
from apps.segments.filtering.paths import Path, PathError, format_path, parse_path

MAX_DEPTH = 20
MAX_LEAVES = 200
MAX_EVENT_NAME = 255
MAX_AT_LEAST = 100_000
MAX_WITHIN_DAYS = 36_600
ANY_EVENT = "*"
SCOPES = ("profile", "event")
_SEGMENT_KEY = re.compile(r"[A-Za-z0-9_-]{1,100}")
_CONSENT_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")
CONSENT_STATES = ("granted", "denied")


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]
    leaf: str = field(default="", compare=False)


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]
    leaf: str = field(default="", compare=False)


@dataclass(frozen=True)
class Not:
    child: Node
    leaf: str = field(default="", compare=False)


@dataclass(frozen=True)
class Item:
    """The condition an `any_item` leaf applies to each item of a list."""

    operator: str
    value: Any


@dataclass(frozen=True)
class Property:
    path: Path
    operator: str
    value: Any = None
    item: Item | None = None
    leaf: str = field(default="", compare=False)


@dataclass(frozen=True)
class Performed:
    """`performed` (negated=False) or `not_performed` (negated=True) an event."""

    event: str
    at_least: int = 1
    within_days: int | None = None
    where: Node | None = None
    negated: bool = False
    leaf: str = field(default="", compare=False)


@dataclass(frozen=True)
class InSegment:
    key: str
    leaf: str = field(default="", compare=False)


@dataclass(frozen=True)
class InGroup:
    group_type: str
    group_id: str
    leaf: str = field(default="", compare=False)


@dataclass(frozen=True)
class Consent:
    """`consent.<key> is granted|denied`: the profile's effective consent of a type (its
    decision, a grant not yet expired, else the type's default; apps/consents)."""

    key: str
    granted: bool
    leaf: str = field(default="", compare=False)


Node = Union[And, Or, Not, Property, Performed, InSegment, InGroup, Consent]  # noqa: UP007


@dataclass
class References:
    """What a filter reads: decides which segments an event or a profile change can affect."""

    profile_fields: set[str] = field(default_factory=set)
    # Top-level keys of traits and private traits (`traits.address.city` -> "address").
    trait_keys: set[str] = field(default_factory=set)
    # Event names of behavioural leaves; any_event when one matches any event.
    event_names: set[str] = field(default_factory=set)
    any_event: bool = False
    segments: set[str] = field(default_factory=set)
    # Consent type keys of consent leaves.
    consents: set[str] = field(default_factory=set)
    # Group type keys (in_group and groups.<type>... paths).
    groups: set[str] = field(default_factory=set)
    # Names of the predictive scores read (`scores.<name>`).
    scores: set[str] = field(default_factory=set)
    # True when the answer can change with time alone (in_the_last, within_days, not_performed).
    time_based: bool = False


@dataclass(frozen=True)
class Filter:
    """A validated filter: the node tree, its normalized JSON and its references."""

    root: Node
    scope: str
    tree: dict[str, Any]
    references: References

    def __str__(self) -> str:
        from apps.segments.filtering.text import to_text

        return to_text(self.tree)


def parse_filter(data: Any, *, scope: str = "profile") -> Filter:
    """Validate a JSON filter tree. Raises FilterError naming the leaf at fault.

    scope "profile": profile paths, behavioural and membership leaves. scope "event": also
    `event.*` paths (the event in scope). `where` clauses of behavioural leaves always read the
    performed event's fields.
    """
    if isinstance(data, Filter):
        data = data.tree
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, not {scope!r}")
    parser = _Parser()
    root = parser.node(data, leaf="", scope=scope, depth=1)
    references = References()
    _collect(root, references)
    return Filter(root=root, scope=scope, tree=to_json(root), references=references)


def _join(prefix: str, part: str) -> str:
    return f"{prefix}.{part}" if prefix else part


class _Parser:
    def __init__(self) -> None:
        self.leaves = 0

    def node(self, data: Any, *, leaf: str, scope: str, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise FilterError(f"the filter nests deeper than {MAX_DEPTH} levels", leaf=leaf)
        if not isinstance(data, dict):
            raise FilterError("a condition is a JSON object", leaf=leaf)
        for name in ("and", "or"):
            if name in data:
                return self._combinator(name, data, leaf=leaf, scope=scope, depth=depth)
        if "not" in data:
            self._only(data, {"not"}, leaf)
            child = self.node(data["not"], leaf=_join(leaf, "not"), scope=scope, depth=depth + 1)
            return Not(child, leaf=leaf)
        self.leaves += 1
        if self.leaves > MAX_LEAVES:
            raise FilterError(f"a filter has at most {MAX_LEAVES} conditions", leaf=leaf)
        if "property" in data:
            return self._property(data, leaf=leaf, scope=scope)
        if "performed" in data or "not_performed" in data:
            return self._performed(data, leaf=leaf, scope=scope, depth=depth)
        if "in_segment" in data or "in_group" in data:
            return self._membership(data, leaf=leaf, scope=scope)
        if "consent" in data:
            return self._consent(data, leaf=leaf, scope=scope)
        keys = ", ".join(sorted(map(str, data))) or "nothing"
        raise FilterError(
            f"unknown condition (keys: {keys}): use and, or, not, property, performed, "
            "not_performed, in_segment, in_group or consent",
            leaf=leaf,
        )

    @staticmethod
    def _only(data: dict[str, Any], allowed: set[str], leaf: str) -> None:
        extra = sorted(set(map(str, data)) - allowed)
        if extra:
            raise FilterError(f"unexpected key {extra[0]!r} in this condition", leaf=leaf)

    def _combinator(
        self, name: str, data: dict[str, Any], *, leaf: str, scope: str, depth: int
    ) -> Node:
        self._only(data, {name}, leaf)
        items = data[name]
        if not isinstance(items, list) or not items:
            raise FilterError(f"{name} takes a non-empty list of conditions", leaf=leaf)
        if len(items) > MAX_LEAVES:
            raise FilterError(f"a filter has at most {MAX_LEAVES} conditions", leaf=leaf)
        children = tuple(
            self.node(item, leaf=_join(leaf, f"{name}[{i}]"), scope=scope, depth=depth + 1)
            for i, item in enumerate(items)
        )
        return And(children, leaf=leaf) if name == "and" else Or(children, leaf=leaf)

    def _property(self, data: dict[str, Any], *, leaf: str, scope: str) -> Property:
        self._only(data, {"property", "operator", "value", "item"}, leaf)
        try:
            path = parse_path(data["property"])
        except PathError as exc:
            raise FilterError(str(exc), leaf=leaf) from None
        if path.is_event and scope == "profile":
            raise FilterError(
                f"{format_path(path)} needs an event in scope: use it in an event filter or "
                "in a performed ... where clause",
                leaf=leaf,
            )
        if not path.is_event and scope == "where":
            raise FilterError(
                f"a where clause reads the performed event: use event.* paths, not "
                f"{format_path(path)}",
                leaf=leaf,
            )
        name = data.get("operator")
        operator = ops.OPERATORS.get(name) if isinstance(name, str) else None
        if operator is None:
            raise FilterError(
                f"unknown operator {name!r}: use one of {', '.join(ops.OPERATORS)}", leaf=leaf
            )
        allowed = ops.FIELD_OPERATORS[path.type]
        if operator.name not in allowed:
            raise FilterError(
                f"{operator.name} does not apply to {format_path(path)} ({path.type}): use "
                f"{', '.join(o for o in ops.OPERATORS if o in allowed)}",
                leaf=leaf,
            )
        if operator.name == "any_item":
            if "value" in data:
                raise FilterError("any_item takes an item condition, not a value", leaf=leaf)
            return Property(path, operator.name, item=self._item(data.get("item"), leaf), leaf=leaf)
        if "item" in data:
            raise FilterError(f"{operator.name} takes no item condition", leaf=leaf)
        try:
            value = ops.check_value(operator, data.get("value"), path.type)
        except ops.ValueError_ as exc:
            raise FilterError(f"{operator.name}: {exc}", leaf=leaf) from None
        return Property(path, operator.name, value, leaf=leaf)

    def _item(self, data: Any, leaf: str) -> Item:
        if not isinstance(data, dict):
            raise FilterError('any_item needs "item": {"operator": ..., "value": ...}', leaf=leaf)
        self._only(data, {"operator", "value"}, leaf)
        name = data.get("operator")
        if not isinstance(name, str) or name not in ops.ITEM_OPERATORS:
            raise FilterError(
                f"unknown item operator {name!r}: use one of "
                f"{', '.join(o for o in ops.OPERATORS if o in ops.ITEM_OPERATORS)}",
                leaf=leaf,
            )
        try:
            value = ops.check_value(ops.OPERATORS[name], data.get("value"), "json")
        except ops.ValueError_ as exc:
            raise FilterError(f"any_item {name}: {exc}", leaf=leaf) from None
        return Item(name, value)

    def _performed(self, data: dict[str, Any], *, leaf: str, scope: str, depth: int) -> Performed:
        negated = "not_performed" in data
        key = "not_performed" if negated else "performed"
        allowed = {key, "within_days", "where"} | (set() if negated else {"at_least"})
        self._only(data, allowed, leaf)
        if scope == "where":
            raise FilterError(f"{key} can't be used inside a where clause", leaf=leaf)
        event = data[key]
        if (
            not isinstance(event, str)
            or not event
            or len(event) > MAX_EVENT_NAME
            or "\x00" in event
        ):
            raise FilterError(
                f"{key} takes an event name (1 to {MAX_EVENT_NAME} characters), or "
                f'"{ANY_EVENT}" for any event',
                leaf=leaf,
            )
        at_least = self._count(data.get("at_least", 1), "at_least", MAX_AT_LEAST, leaf)
        within = data.get("within_days")
        within_days = (
            None if within is None else self._count(within, "within_days", MAX_WITHIN_DAYS, leaf)
        )
        where = None
        if data.get("where") is not None:
            where = self.node(
                data["where"], leaf=_join(leaf, "where"), scope="where", depth=depth + 1
            )
        return Performed(event, at_least, within_days, where, negated, leaf=leaf)

    @staticmethod
    def _count(value: Any, name: str, maximum: int, leaf: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
            raise FilterError(f"{name} is a whole number from 1 to {maximum}", leaf=leaf)
        return value

    def _membership(self, data: dict[str, Any], *, leaf: str, scope: str) -> Node:
        if scope == "where":
            raise FilterError("membership conditions can't be used inside a where", leaf=leaf)
        if "in_segment" in data:
            self._only(data, {"in_segment"}, leaf)
            key = data["in_segment"]
            if not isinstance(key, str) or not _SEGMENT_KEY.fullmatch(key):
                raise FilterError("in_segment takes a segment key (a slug)", leaf=leaf)
            return InSegment(key, leaf=leaf)
        self._only(data, {"in_group"}, leaf)
        group = data["in_group"]
        if not isinstance(group, dict) or set(group) != {"key", "id"}:
            raise FilterError('in_group takes {"key": group type, "id": group id}', leaf=leaf)
        for part in ("key", "id"):
            value = group[part]
            if not isinstance(value, str) or not value or len(value) > 200 or "\x00" in value:
                raise FilterError(f"in_group {part} is a string of 1 to 200 characters", leaf=leaf)
        return InGroup(group["key"], group["id"], leaf=leaf)

    def _consent(self, data: dict[str, Any], *, leaf: str, scope: str) -> Node:
        if scope == "where":
            raise FilterError("consent conditions can't be used inside a where", leaf=leaf)
        self._only(data, {"consent", "is"}, leaf)
        key, state = data.get("consent"), data.get("is")
        if not isinstance(key, str) or not _CONSENT_KEY.fullmatch(key):
            raise FilterError(
                "consent takes a consent type key (lowercase, e.g. marketing)", leaf=leaf
            )
        if state not in CONSENT_STATES:
            raise FilterError(
                'a consent condition is {"consent": key, "is": "granted" or "denied"}', leaf=leaf
            )
        return Consent(key, state == "granted", leaf=leaf)


def to_json(node: Node) -> dict[str, Any]:
    """The normalized JSON of a node: canonical paths, defaults left out, one-child and/or
    collapsed (so the text form round-trips)."""
    if isinstance(node, And | Or):
        if len(node.children) == 1:
            return to_json(node.children[0])
        name = "and" if isinstance(node, And) else "or"
        return {name: [to_json(child) for child in node.children]}
    if isinstance(node, Not):
        return {"not": to_json(node.child)}
    if isinstance(node, Property):
        out: dict[str, Any] = {"property": format_path(node.path), "operator": node.operator}
        if node.item is not None:
            item: dict[str, Any] = {"operator": node.item.operator}
            if node.item.value is not None:
                item["value"] = node.item.value
            out["item"] = item
        elif node.value is not None:
            out["value"] = node.value
        return out
    if isinstance(node, Performed):
        result: dict[str, Any] = {"not_performed" if node.negated else "performed": node.event}
        if node.at_least != 1:
            result["at_least"] = node.at_least
        if node.within_days is not None:
            result["within_days"] = node.within_days
        if node.where is not None:
            result["where"] = to_json(node.where)
        return result
    if isinstance(node, InSegment):
        return {"in_segment": node.key}
    if isinstance(node, Consent):
        return {"consent": node.key, "is": "granted" if node.granted else "denied"}
    return {"in_group": {"key": node.group_type, "id": node.group_id}}


def _collect(node: Node, refs: References) -> None:
    if isinstance(node, And | Or):
        for child in node.children:
            _collect(child, refs)
    elif isinstance(node, Not):
        _collect(node.child, refs)
    elif isinstance(node, Property):
        path = node.path
        if path.kind == "profile_field":
            refs.profile_fields.add(path.column)
        elif path.kind in ("traits", "private_traits"):
            refs.trait_keys.add(path.keys[0])
        elif path.kind in ("group_id", "group_json"):
            refs.groups.add(path.group_type)
        elif path.kind == "score":
            refs.scores.add(path.keys[0])
        operators = {node.operator, node.item.operator if node.item else ""}
        if operators & {"in_the_last", "not_in_the_last"}:
            refs.time_based = True
    elif isinstance(node, Performed):
        if node.event == ANY_EVENT:
            refs.any_event = True
        else:
            refs.event_names.add(node.event)
        if node.within_days is not None or node.negated:
            refs.time_based = True
        if node.where is not None:
            _collect(node.where, refs)
    elif isinstance(node, InSegment):
        refs.segments.add(node.key)
    elif isinstance(node, Consent):
        refs.consents.add(node.key)
        # Decisions arrive as consent events, and grants expire with time.
        refs.event_names.update({"consent_granted", "consent_revoked"})
        refs.time_based = True
    else:
        refs.groups.add(node.group_type)
