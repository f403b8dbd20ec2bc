"""The SQL evaluator: a filter compiled to one ORM query (SQLite JSON1 or PostgreSQL jsonb)."""

from __future__ import annotations

import json
import operator as pyop
import string
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from functools import reduce
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.db.models import (
    BooleanField,
    Exists,
    Expression,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.utils import timezone

from apps.consents import selectors as consent_selectors
from apps.events.models import Event, Session
from apps.profiles.models import GroupMembership, Identity, Profile
from apps.segments.filtering import operators as ops
from apps.segments.filtering.errors import FilterError
from apps.segments.filtering.membership import segment_member_ids
from apps.segments.filtering.memory import evaluate_on_empty_profile
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

SQLITE_TIMESTAMP_FUNCTION = "cdp_filter_ts"


def _register_sqlite_functions(connection: BaseDatabaseWrapper) -> None:
    # Dates in JSON are parsed by the same Python code the in-memory evaluator uses, so the two
    # agree on every string; SQLite's own date functions accept 2024-02-30 and round to ms.
    connection.connection.create_function(
        SQLITE_TIMESTAMP_FUNCTION, 1, ops.sqlite_timestamp, deterministic=True
    )


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        _register_sqlite_functions(connection)


connection_created.connect(_on_connection_created, dispatch_uid="segments_filtering_sqlite")


def _prepare(alias: str) -> str:
    """The vendor of the database the query will run on; on SQLite, make sure the connection
    that is already open has our function (connections opened later get it from the signal)."""
    connection = connections[alias]
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        _register_sqlite_functions(connection)
    return connection.vendor


def profiles_matching(
    filt: Filter, *, now: datetime | None = None, queryset: QuerySet[Profile] | None = None
) -> QuerySet[Profile]:
    """The profiles that match, as one query (behavioural leaves are subqueries over events
    joined through the identity table: uncorrelated sets where the filter's top-level AND puts
    them, correlated EXISTS elsewhere). Merged profiles never match."""
    base = queryset if queryset is not None else Profile.objects.all()
    compiler = _Compiler(_prepare(base.db), now or timezone.now())
    return base.filter(merged_into__isnull=True).filter(compiler.profile(filt.root))


def events_matching(
    filt: Filter, queryset: QuerySet[Event] | None = None, *, now: datetime | None = None
) -> QuerySet[Event]:
    """The events that match an event filter; profile leaves read the profile that owns the
    event's distinct_id (an event without one reads as an empty profile)."""
    base = queryset if queryset is not None else Event.objects.all()
    compiler = _Compiler(_prepare(base.db), now or timezone.now())
    return base.filter(compiler.event(filt.root))


# --- raw SQL fragments ---------------------------------------------------------------------------


class _Param:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


Part = Any  # str (SQL text) | _Param | an ORM expression (F, Col, ...)
Parts = list[Part]


class Sql(Expression):
    """A boolean SQL fragment made of text, parameters and ORM expressions (resolved against
    the query, so F("traits") gets the right table alias). Values are always parameters."""

    conditional = True
    output_field = BooleanField()

    def __init__(self, parts: Parts) -> None:
        super().__init__()
        self.parts = list(parts)

    def get_source_expressions(self) -> list[Any]:
        return [p for p in self.parts if not isinstance(p, str | _Param)]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        replaced = iter(exprs)
        self.parts = [p if isinstance(p, str | _Param) else next(replaced) for p in self.parts]

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        sql: list[str] = []
        params: list[Any] = []
        for part in self.parts:
            if isinstance(part, str):
                sql.append(part)
            elif isinstance(part, _Param):
                sql.append("%s")
                params.append(part.value)
            else:
                part_sql, part_params = compiler.compile(part)
                sql.append(part_sql)
                params.extend(part_params)
        return "(" + "".join(sql) + ")", params


def _q(parts: Parts) -> Q:
    return Q(Sql(parts))


TRUE = Q(Sql(["1 = 1"]))
FALSE = Q(Sql(["1 = 0"]))


def _const(flag: bool) -> Q:
    return TRUE if flag else FALSE


def _join(parts_list: list[Parts], glue: str) -> Parts:
    out: Parts = []
    for i, parts in enumerate(parts_list):
        if i:
            out.append(glue)
        out.extend(["(", *parts, ")"])
    return out


_UPPER = string.ascii_uppercase
_LOWER = string.ascii_lowercase


# --- value accessors -----------------------------------------------------------------------------


class _Accessor:
    """SQL for reading one value: presence, type tests and typed views (NULL when not that
    type). Subclasses: a PostgreSQL jsonb value, a SQLite JSON value, a typed column."""

    vendor: str

    def present(self) -> Parts:
        raise NotImplementedError

    def is_string(self) -> Parts:
        raise NotImplementedError

    def text(self) -> Parts:
        raise NotImplementedError

    def number(self) -> Parts:
        raise NotImplementedError

    def boolean(self, flag: bool) -> Parts:
        raise NotImplementedError

    def date(self) -> Parts:
        raise NotImplementedError

    def list_match(self, values: list[Any], every: bool) -> Parts:
        raise NotImplementedError

    def any_item(self, condition: Callable[[_Accessor], Parts]) -> Parts:
        raise NotImplementedError

    def folded_text(self) -> Parts:
        if self.vendor == "postgresql":
            # translate() folds A-Z only, whatever the database's locale: the same as the
            # in-memory evaluator's ascii_fold (SQLite's LIKE already ignores ASCII case only).
            return ["translate(", *self.text(), ", ", _Param(_UPPER), ", ", _Param(_LOWER), ")"]
        return self.text()

    def number_param(self, bound: Decimal) -> _Param:
        if self.vendor == "postgresql":
            return _Param(bound)
        return _Param(int(bound) if bound == bound.to_integral_value() else float(bound))

    def date_param(self, instant: datetime) -> _Param:
        return _Param(instant if self.vendor == "postgresql" else ops.micros(instant))


_PG_DATE_RE = "^" + ops.DATE_PATTERN + "$"
_PG_ZONE_RE = "(Z|[+-][0-9]{2}:[0-9]{2})$"


class _PgJson(_Accessor):
    vendor = "postgresql"

    def __init__(self, value: Parts) -> None:
        self.v = ["(", *value, ")"]

    def _typeof(self) -> Parts:
        return ["jsonb_typeof(", *self.v, ")"]

    def present(self) -> Parts:
        return ["COALESCE(", *self._typeof(), ", 'null') <> 'null'"]

    def is_string(self) -> Parts:
        return [*self._typeof(), " = 'string'"]

    def text(self) -> Parts:
        return ["(", *self.v, " #>> '{}')"]

    def number(self) -> Parts:
        return [
            "CASE WHEN ",
            *self._typeof(),
            " = 'number' THEN CAST(",
            *self.v,
            " AS numeric) END",
        ]

    def boolean(self, flag: bool) -> Parts:
        return [*self.v, " = ", "'true'::jsonb" if flag else "'false'::jsonb"]

    def date(self) -> Parts:
        t = self.text()
        year, month, day = (
            ["CAST(substr(", *t, f", {start}, {length}) AS integer)"]
            for start, length in ((1, 4), (6, 2), (9, 2))
        )
        last_day = [
            "CAST(extract(day from (make_date(",
            *year,
            ", ",
            *month,
            ", 1)",
            " + interval '1 month' - interval '1 day')) AS integer)",
        ]
        return [
            "CASE WHEN ",
            *self.is_string(),
            " AND ",
            *t,
            " ~ ",
            _Param(_PG_DATE_RE),
            " THEN CASE WHEN ",
            *day,
            " <= ",
            *last_day,
            " THEN CASE WHEN ",
            *t,
            " ~ ",
            _Param(_PG_ZONE_RE),
            " THEN CAST(",
            *t,
            " AS timestamptz) ELSE CAST(",
            *t,
            " AS timestamp) AT TIME ZONE 'UTC' END END END",
        ]

    def list_match(self, values: list[Any], every: bool) -> Parts:
        # A stored array contains the values (jsonb @> compares numbers as numbers, "1" != 1);
        # a stored scalar is a one-item list.
        def equals(value: Any) -> Parts:
            return [*self.v, " = CAST(", _Param(json.dumps(value)), " AS jsonb)"]

        if every:
            array = [
                *self._typeof(),
                " = 'array' AND ",
                *self.v,
                " @> CAST(",
                _Param(json.dumps(values)),
                " AS jsonb)",
            ]
            return _join([array, _join([equals(v) for v in values], " AND ")], " OR ")
        return _join(
            [
                [
                    *self.v,
                    " @> CAST(",
                    _Param(json.dumps([value])),
                    " AS jsonb) OR ",
                    *equals(value),
                ]
                for value in values
            ],
            " OR ",
        )

    def any_item(self, condition: Callable[[_Accessor], Parts]) -> Parts:
        items = [
            "CASE WHEN ",
            *self._typeof(),
            " = 'array' THEN ",
            *self.v,
            " WHEN ",
            *self._typeof(),
            " IN ('string', 'number', 'boolean') THEN jsonb_build_array(",
            *self.v,
            ") ELSE CAST('[]' AS jsonb) END",
        ]
        return [
            "EXISTS (SELECT 1 FROM jsonb_array_elements(",
            *items,
            ") AS cdp_item(value) WHERE ",
            *condition(_PgJson(["cdp_item.value"])),
            ")",
        ]


def _sqlite_path(keys: tuple[str, ...]) -> str:
    # Keys never hold quotes or backslashes (validated), so a quoted label is exact.
    return "$" + "".join(f'."{key}"' for key in keys)


class _SqliteJson(_Accessor):
    vendor = "sqlite"

    def __init__(self, typ: Parts, value: Parts, each: Parts | None = None) -> None:
        self.typ = ["(", *typ, ")"]
        self.value = ["(", *value, ")"]
        self.each = each  # the json_each(...) arguments of the value, for list operators

    @classmethod
    def at(cls, column: Any, keys: tuple[str, ...]) -> _SqliteJson:
        args = [column, ", ", _Param(_sqlite_path(keys))]
        return cls(["json_type(", *args, ")"], ["json_extract(", *args, ")"], args)

    def present(self) -> Parts:
        return ["COALESCE(", *self.typ, ", 'null') <> 'null'"]

    def is_string(self) -> Parts:
        return [*self.typ, " = 'text'"]

    def text(self) -> Parts:
        return self.value

    def number(self) -> Parts:
        return ["CASE WHEN ", *self.typ, " IN ('integer', 'real') THEN ", *self.value, " END"]

    def boolean(self, flag: bool) -> Parts:
        return [*self.typ, " = 'true'" if flag else " = 'false'"]

    def date(self) -> Parts:
        return [
            f"{SQLITE_TIMESTAMP_FUNCTION}(CASE WHEN ",
            *self.is_string(),
            " THEN ",
            *self.value,
            " END)",
        ]

    def _each(self, where: Parts) -> Parts:
        assert self.each is not None
        # json_each over a scalar yields the scalar itself: a one-item list, as in memory.
        return [
            *self.typ,
            " NOT IN ('object', 'null') AND EXISTS (SELECT 1 FROM json_each(",
            *self.each,
            ") AS cdp_item WHERE ",
            *where,
            ")",
        ]

    @staticmethod
    def _item_equals(value: Any) -> Parts:
        if isinstance(value, bool):
            return ["cdp_item.type = 'true'" if value else "cdp_item.type = 'false'"]
        if isinstance(value, str):
            return ["cdp_item.type = 'text' AND cdp_item.value = ", _Param(value)]
        return ["cdp_item.type IN ('integer', 'real') AND cdp_item.value = ", _Param(value)]

    def list_match(self, values: list[Any], every: bool) -> Parts:
        if every:
            return _join([self._each(self._item_equals(v)) for v in values], " AND ")
        return self._each(_join([self._item_equals(v) for v in values], " OR "))

    def any_item(self, condition: Callable[[_Accessor], Parts]) -> Parts:
        return self._each(condition(_SqliteJson(["cdp_item.type"], ["cdp_item.value"])))


class _Column(_Accessor):
    """A typed column; for text columns "" means not set (as blank session fields do)."""

    def __init__(self, vendor: str, column: Any, type_: str) -> None:
        self.vendor = vendor
        self.col = column
        self.type = type_

    def present(self) -> Parts:
        if self.type == "string":
            return [self.col, " IS NOT NULL AND ", self.col, " <> ''"]
        return [self.col, " IS NOT NULL"]

    def is_string(self) -> Parts:
        return self.present()

    def text(self) -> Parts:
        return [self.col]

    def number(self) -> Parts:
        return [self.col]

    def boolean(self, flag: bool) -> Parts:
        return [self.col, " = ", _Param(flag)]

    def date(self) -> Parts:
        if self.vendor == "postgresql":
            return [self.col]
        return [f"{SQLITE_TIMESTAMP_FUNCTION}(", self.col, ")"]

    def list_match(self, values: list[Any], every: bool) -> Parts:
        return [
            *self.present(),
            " AND ",
            *_join([[self.col, " = ", _Param(v)] for v in values], " AND " if every else " OR "),
        ]


# --- operators -----------------------------------------------------------------------------------


def _condition(acc: _Accessor, operator: str, value: Any, now: datetime) -> Parts:
    """A two-valued condition (never NULL, so NOT and OR behave as in memory)."""
    spec = ops.OPERATORS[operator]
    if spec.negates is not None:
        return ["NOT ", *_condition(acc, spec.negates, value, now)]
    return ["COALESCE((", *_positive(acc, operator, value, now), "), FALSE)"]


_CMP = {"=": " = ", ">": " > ", ">=": " >= ", "<": " < ", "<=": " <= "}


def _positive(acc: _Accessor, operator: str, value: Any, now: datetime) -> Parts:
    spec = ops.OPERATORS[operator]
    if operator == "is_set":
        return acc.present()
    if operator == "is":
        return [*acc.is_string(), " AND ", *acc.text(), " = ", _Param(value)]
    if spec.family == "string":
        pattern = ops.like_escape(ops.ascii_fold(value))
        pattern = {"contains": f"%{pattern}%", "starts_with": f"{pattern}%"}.get(
            operator, f"%{pattern}"
        )
        return [
            *acc.is_string(),
            " AND ",
            *acc.folded_text(),
            " LIKE ",
            _Param(pattern),
            " ESCAPE ",
            _Param("\\"),
        ]
    if spec.family == "boolean":
        return acc.boolean(operator == "is_true")
    if spec.family == "date" or (operator == "between" and ops.between_is_date(value)):
        return _join(
            [
                [*acc.date(), _CMP[cmp], acc.date_param(bound)]
                for cmp, bound in ops.date_constraints(operator, value, now)
            ],
            " AND ",
        )
    if spec.family == "number":
        return _join(
            [
                [*acc.number(), _CMP[cmp], acc.number_param(bound)]
                for cmp, bound in ops.number_constraints(operator, value)
            ],
            " AND ",
        )
    return acc.list_match(value, every=operator == "all_in_list")


def _leaf(acc: _Accessor, node: Property, now: datetime) -> Q:
    if node.item is None:
        return _q(_condition(acc, node.operator, node.value, now))
    item = node.item
    return _q(
        [
            "COALESCE((",
            *acc.any_item(lambda a: _condition(a, item.operator, item.value, now)),
            "), FALSE)",
        ]
    )


def _true_on_missing(node: Property) -> bool:
    return node.item is None and ops.true_on_missing(node.operator)


# --- the compiler --------------------------------------------------------------------------------


class _Compiler:
    def __init__(self, vendor: str, now: datetime) -> None:
        if vendor not in ("sqlite", "postgresql"):
            raise NotImplementedError(f"filters run on SQLite and PostgreSQL, not {vendor}")
        self.vendor = vendor
        self.now = now

    def _combine(self, node: Node, leaf: Callable[[Node], Q]) -> Q:
        if isinstance(node, And):
            return reduce(pyop.and_, (self._combine(c, leaf) for c in node.children))
        if isinstance(node, Or):
            return reduce(pyop.or_, (self._combine(c, leaf) for c in node.children))
        if isinstance(node, Not):
            return ~self._combine(node.child, leaf)
        return leaf(node)

    def profile(self, node: Node) -> Q:
        """A condition on Profile rows.

        Behavioural leaves joined to the rest by the top-level AND (alone, or under a `not`
        there) read one uncorrelated set of profile ids, which PostgreSQL turns into a hash
        semi (anti) join that may run in parallel; anywhere else (under `or`, under `not` of a
        combination) they stay correlated EXISTS, since a set under OR is not joined but probed
        per profile, in a hash only when it fits work_mem, else by scanning it every time."""
        if isinstance(node, And):
            return reduce(pyop.and_, (self.profile(c) for c in node.children))
        if isinstance(node, Performed):
            return self._performed_set(node)
        if isinstance(node, Not) and isinstance(node.child, Performed):
            # `not (performed X)` is exactly `not_performed X` (and the converse).
            return self._performed_set(replace(node.child, negated=not node.child.negated))
        return self._combine(node, self._profile_leaf)

    def event(self, node: Node) -> Q:
        """A condition on Event rows."""
        return self._combine(node, self._event_leaf)

    def _json(self, column: Any, keys: tuple[str, ...]) -> _Accessor:
        if self.vendor == "postgresql":
            parts: Parts = [column]
            for key in keys:
                # `-> text` never indexes an array (unlike #> with a path), as in memory.
                parts.extend([" -> CAST(", _Param(key), " AS text)"])
            return _PgJson(parts)
        return _SqliteJson.at(column, keys)

    def _accessor(self, path: Path, prefix: str = "") -> _Accessor:
        if path.type == "json":
            return self._json(F(prefix + path.column), path.keys)
        return _Column(self.vendor, F(prefix + path.column), path.type)

    # profile rows

    def _profile_leaf(self, node: Node) -> Q:
        if isinstance(node, Property):
            path = node.path
            if path.is_event:  # no event in scope: the path is missing
                return _const(_true_on_missing(node))
            if path.kind in ("group_id", "group_json"):
                return self._group_property(node)
            if path.kind == "score":
                return self._score(node)
            return _leaf(self._accessor(path), node, self.now)
        if isinstance(node, Performed):
            return self._performed(node)
        if isinstance(node, InSegment):
            return Q(pk__in=segment_member_ids(node.key, leaf=node.leaf))
        if isinstance(node, Consent):
            try:
                return consent_selectors.consent_profile_ids_sql(
                    node.key, granted=node.granted, now=self.now
                )
            except LookupError:
                raise FilterError(f"unknown consent type {node.key!r}", leaf=node.leaf) from None
        assert isinstance(node, InGroup)
        return Q(
            Exists(
                GroupMembership.objects.filter(
                    profile_id=OuterRef("pk"),
                    group__group_type__key=node.group_type,
                    group__group_id=node.group_id,
                )
            )
        )

    def _group_property(self, node: Property) -> Q:
        """True when one of the profile's groups of the type matches; with none of that type,
        the value is missing."""
        of_type = GroupMembership.objects.filter(
            profile_id=OuterRef("pk"), group__group_type__key=node.path.group_type
        )
        matching = of_type.filter(_leaf(self._accessor(node.path, "group__"), node, self.now))
        query = Q(Exists(matching))
        if _true_on_missing(node):
            query |= ~Q(Exists(of_type))
        return query

    def _score(self, node: Property) -> Q:
        """`pk IN (the profiles whose score matches)`, over the (score, value) index; a
        negating operator is NOT IN the positive set (profile_id is never NULL), so a profile
        without the score matches it, as a missing value does in memory."""
        spec = ops.OPERATORS[node.operator]
        positive = node if spec.negates is None else replace(node, operator=spec.negates)
        value = _Column(self.vendor, F("value"), "number")
        rows = ProfileScore.objects.filter(definition__name=node.path.keys[0]).filter(
            _leaf(value, positive, self.now)
        )
        matching = Q(pk__in=rows.values("profile_id"))
        return ~matching if spec.negates is not None else matching

    def _performed_events(self, node: Performed, events: QuerySet[Event]) -> QuerySet[Event]:
        """The events a behavioural leaf counts, whoever performed them: any activity, or
        the events of one name (platform events only when named). Personless events belong to
        nobody, even once their distinct_id has a profile."""
        events = events.filter(personless=False)
        if node.event != ANY_EVENT:
            events = events.filter(event_name=node.event)
        else:
            events = events.filter(platform=False)
        if node.within_days is not None:
            events = events.filter(timestamp__gte=self.now - timedelta(days=node.within_days))
        if node.where is not None:
            events = events.filter(self.event(node.where))
        return events.order_by()

    def _performed_set(self, node: Performed) -> Q:
        """`pk IN (the profiles with at least N matching events)`, the set computed once:
        the matching events (an ORM query) joined to their profiles through the identity table
        (a distinct_id has one identity row at most, so each event counts once), grouped by
        profile when N > 1. Negated, `NOT EXISTS` over the same set: an anti join, never a
        `NOT IN`, which PostgreSQL cannot turn into one and probes row by row when the set
        does not fit work_mem (identity.profile_id is NOT NULL, so both are exact)."""
        events = self._performed_events(node, Event.objects.all()).values("distinct_id")
        identity = Identity._meta.db_table
        members: Parts = [
            "SELECT cdp_identity.profile_id FROM ",
            Subquery(events),
            f' cdp_event JOIN "{identity}" cdp_identity'
            " ON cdp_identity.distinct_id = cdp_event.distinct_id",
        ]
        if node.at_least > 1:
            members += [
                " GROUP BY cdp_identity.profile_id HAVING count(*) >= ",
                _Param(node.at_least),
            ]
        if node.negated:
            return _q(
                [
                    "NOT EXISTS (SELECT 1 FROM (",
                    *members,
                    ") cdp_members WHERE cdp_members.profile_id = ",
                    F("pk"),
                    ")",
                ]
            )
        return _q([F("pk"), " IN (", *members, ")"])

    def _performed(self, node: Performed) -> Q:
        owned = Identity.objects.filter(profile_id=OuterRef(OuterRef("pk"))).values("distinct_id")
        events = self._performed_events(node, Event.objects.filter(distinct_id__in=owned))
        if node.at_least > 1:
            # EXISTS (... OFFSET n-1 LIMIT 1): stops at the n-th event instead of counting all.
            events = events[node.at_least - 1 : node.at_least]
        exists = Q(Exists(events))
        return ~exists if node.negated else exists

    # event rows

    def _event_leaf(self, node: Node) -> Q:
        if isinstance(node, Property) and node.path.is_event:
            path = node.path
            if path.kind == "session_field":
                session = Session.objects.filter(pk=OuterRef("session_id"))
                query = Q(Exists(session.filter(_leaf(self._accessor(path), node, self.now))))
                if _true_on_missing(node):
                    query |= ~Q(Exists(session))
                return query
            if path.type == "uuid":
                positive = Q(source_id=node.value) if node.operator in ("is", "is_not") else TRUE
                return ~positive if ops.OPERATORS[node.operator].negates else positive
            return _leaf(self._accessor(path), node, self.now)
        # A profile leaf: the profile that owns the event's distinct_id.
        profiles = Profile.objects.filter(self._profile_leaf(node))
        query = Q(
            distinct_id__in=Identity.objects.filter(profile__in=profiles).values("distinct_id")
        )
        if evaluate_on_empty_profile(node, now=self.now):
            query |= ~Q(distinct_id__in=Identity.objects.values("distinct_id"))
        return query
