"""The in-memory evaluator: one profile (and optionally one event) against a filter."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from apps.consents import selectors as consent_selectors
from apps.events.models import Event
from apps.profiles.models import Group, Identity, Profile
from apps.segments.filtering import operators as ops
from apps.segments.filtering.errors import FilterError
from apps.segments.filtering.membership import segment_has_member
from apps.segments.filtering.paths import Path
from apps.segments.filtering.tree import (
    ANY_EVENT,
    And,
    Consent,
    Filter,
    InGroup,
    InSegment,
    Node,
    Not,
    Or,
    Performed,
    Property,
)
from apps.segments.scoring.models import ProfileScore


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

_COMPARE = {
    "=": lambda a, b: a == b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def evaluate(
    filt: Filter,
    *,
    profile: Profile | None,
    event: Event | None = None,
    now: datetime | None = None,
    events: Iterable[Event] | None = None,
) -> bool:
    """Whether the profile (with `event` in scope, for event filters) matches.

    Behavioural leaves read `events` (the profile's events) when given, else load them through
    the identity table. Without an event in scope, event paths are missing. A profile of None
    evaluates as an empty profile (no traits, no events, no groups, no segments).
    """
    context = _Context(filt, profile, event, now or timezone.now(), events)
    return context.eval(filt.root)


def evaluate_on_empty_profile(node: Node, *, now: datetime) -> bool:
    """A profile leaf's answer for an event whose distinct_id has no profile (events_matching)."""
    return _Context(None, None, None, now, ()).eval(node)


def apply_operator(operator: str, value: Any, stored: Any, now: datetime) -> bool:
    """One operator against one stored value (MISSING for a missing path or a JSON null)."""
    spec = ops.OPERATORS[operator]
    if spec.negates is not None:
        return not apply_operator(spec.negates, value, stored, now)
    if stored is MISSING or stored is None:
        return False
    if operator == "is_set":
        return True
    if spec.family == "string":
        if not isinstance(stored, str):
            return False
        if operator == "is":
            return stored == value
        folded, wanted = ops.ascii_fold(stored), ops.ascii_fold(value)
        if operator == "contains":
            return wanted in folded
        if operator == "starts_with":
            return folded.startswith(wanted)
        return folded.endswith(wanted)
    if spec.family == "boolean":
        return stored is (operator == "is_true")
    if spec.family == "date" or (operator == "between" and ops.between_is_date(value)):
        instant = ops.parse_stored_date(stored)
        return instant is not None and all(
            _COMPARE[cmp](instant, bound)
            for cmp, bound in ops.date_constraints(operator, value, now)
        )
    if spec.family == "number":
        if not ops.is_number(stored):
            return False
        number = ops.to_decimal(stored)
        return all(
            _COMPARE[cmp](number, bound) for cmp, bound in ops.number_constraints(operator, value)
        )
    items = _items(stored)
    if operator == "any_in_list":
        return any(ops.json_equal(item, wanted) for item in items for wanted in value)
    if operator == "all_in_list":
        return all(any(ops.json_equal(item, wanted) for item in items) for wanted in value)
    raise AssertionError(f"unhandled operator {operator}")


def _items(stored: Any) -> list[Any]:
    """List operators read a JSON array; a scalar counts as a one-item list, an object as none."""
    if isinstance(stored, list):
        return stored
    if isinstance(stored, dict):
        return []
    return [stored]


def _walk(data: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return MISSING
        data = data[key]
    return MISSING if data is None else data


def _column(value: Any) -> Any:
    return MISSING if value is None or value == "" else value


class _Context:
    def __init__(
        self,
        filt: Filter | None,
        profile: Profile | None,
        event: Event | None,
        now: datetime,
        events: Iterable[Event] | None,
    ) -> None:
        self.filt = filt
        self.profile = profile if profile is not None else Profile(traits={}, private_traits={})
        self.saved = profile is not None and not profile._state.adding
        self.event = event
        self.now = now
        self._events = list(events) if events is not None else None
        self._groups: list[Group] | None = None if self.saved else []
        self._scores: dict[str, float] | None = None if self.saved else {}

    def eval(self, node: Node) -> bool:
        if isinstance(node, And):
            return all(self.eval(child) for child in node.children)
        if isinstance(node, Or):
            return any(self.eval(child) for child in node.children)
        if isinstance(node, Not):
            return not self.eval(node.child)
        if isinstance(node, Property):
            return self._property(node)
        if isinstance(node, Performed):
            return self._performed(node)
        if isinstance(node, InSegment):
            return self.saved and segment_has_member(node.key, self.profile, leaf=node.leaf)
        if isinstance(node, Consent):
            return self._consent(node)
        return self._in_group(node)

    def _consent(self, node: Consent) -> bool:
        try:
            holds = (
                consent_selectors.consent_profile_holds(node.key, self.profile)
                if self.saved
                else consent_selectors.consent_default_holds(node.key)
            )
        except LookupError:
            raise FilterError(f"unknown consent type {node.key!r}", leaf=node.leaf) from None
        return holds == node.granted

    def _check(self, node: Property, stored: Any) -> bool:
        if node.item is None:
            return apply_operator(node.operator, node.value, stored, self.now)
        if stored is MISSING:
            return False
        return any(
            apply_operator(node.item.operator, node.item.value, item, self.now)
            for item in _items(stored)
        )

    def _property(self, node: Property) -> bool:
        path = node.path
        if path.kind in ("group_id", "group_json"):
            groups = [g for g in self.groups() if g.group_type.key == path.group_type]
            if not groups:
                return self._check(node, MISSING)
            return any(self._check(node, self._group_value(path, g)) for g in groups)
        return self._check(node, self._value(path, self.event))

    def _value(self, path: Path, event: Event | None) -> Any:
        if path.kind == "profile_field":
            return _column(getattr(self.profile, path.column))
        if path.kind in ("traits", "private_traits"):
            return _walk(getattr(self.profile, path.kind), path.keys)
        if path.kind == "score":
            return self.scores().get(path.keys[0], MISSING)
        if event is None:
            return MISSING
        if path.kind == "event_field":
            value = getattr(event, path.column)
            return _column(str(value) if path.type == "uuid" and value is not None else value)
        if path.kind == "event_json":
            return _walk(getattr(event, path.column), path.keys)
        session = event.session
        return MISSING if session is None else _column(getattr(session, path.column))

    @staticmethod
    def _group_value(path: Path, group: Group) -> Any:
        if path.kind == "group_id":
            return _column(group.group_id)
        return _walk(group.properties, path.keys)

    def _performed(self, node: Performed) -> bool:
        since = None if node.within_days is None else self.now - timedelta(days=node.within_days)
        count = 0
        for event in self.events():
            if event.personless:
                continue  # nobody's event, even once its distinct_id has a profile
            if node.event == ANY_EVENT:
                if event.platform:
                    continue  # `performed any` is activity; platform events match by name
            elif event.event_name != node.event:
                continue
            if since is not None and event.timestamp < since:
                continue
            if node.where is not None and not _EventContext(self, event).eval(node.where):
                continue
            count += 1
            if count >= node.at_least:
                break
        return (count < node.at_least) if node.negated else (count >= node.at_least)

    def _in_group(self, node: InGroup) -> bool:
        return any(
            g.group_type.key == node.group_type and g.group_id == node.group_id
            for g in self.groups()
        )

    def groups(self) -> list[Group]:
        if self._groups is None:
            self._groups = list(
                Group.objects.filter(memberships__profile=self.profile).select_related("group_type")
            )
        return self._groups

    def scores(self) -> dict[str, float]:
        """The profile's current scores by name (one query, on first use)."""
        if self._scores is None:
            self._scores = dict(
                ProfileScore.objects.filter(profile=self.profile).values_list(
                    "definition__name", "value"
                )
            )
        return self._scores

    def events(self) -> list[Event]:
        if self._events is None:
            self._events = self._load_events() if self.saved else []
        return self._events

    def _load_events(self) -> list[Event]:
        """The profile's events that behavioural leaves can count, in one query."""
        leaves = [
            n
            for n in _walk_nodes(self.filt.root if self.filt else None)
            if isinstance(n, Performed)
        ]
        if not leaves:
            return []
        queryset = Event.objects.filter(
            distinct_id__in=Identity.objects.filter(profile=self.profile).values("distinct_id"),
            personless=False,
        )
        names = {leaf.event for leaf in leaves}
        if ANY_EVENT not in names:
            queryset = queryset.filter(event_name__in=names)
        if all(leaf.within_days is not None for leaf in leaves):
            days = max(leaf.within_days or 0 for leaf in leaves)
            queryset = queryset.filter(timestamp__gte=self.now - timedelta(days=days))
        return list(queryset.select_related("session").order_by("-timestamp"))


class _EventContext(_Context):
    """A where clause: the same profile, with one performed event in scope."""

    def __init__(self, parent: _Context, event: Event) -> None:
        self.__dict__.update(parent.__dict__)
        self.event = event


def _walk_nodes(node: Node | None) -> Iterable[Node]:
    if node is None:
        return
    yield node
    if isinstance(node, And | Or):
        for child in node.children:
            yield from _walk_nodes(child)
    elif isinstance(node, Not):
        yield from _walk_nodes(node.child)
