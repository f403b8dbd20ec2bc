"""The text form: a parser (errors point at the position) and a printer that round-trips."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from apps.segments.filtering import operators as ops
from apps.segments.filtering.errors import FilterError
from apps.segments.filtering.paths import BARE_KEY
from apps.segments.filtering.tree import ANY_EVENT, parse_filter

MAX_TEXT_LENGTH = 20_000

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<punct>[()\[\],])
  | (?P<cmp>>=|<=|!=|==?|>|<)
  | (?P<string>"(?:[^"\\\x00-\x1f]|\\.)*")
  | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?![A-Za-z0-9_$]))
  | (?P<word>[A-Za-z_$][A-Za-z0-9_$-]*(?:\.(?:[A-Za-z0-9_$-]+|"[^"\\\x00-\x1f]*"))*)
    """,
    re.VERBOSE,
)
# Comparison symbols, a shorter spelling of the number operators (`scores.buy_7d >= 0.7`);
# the printer writes the names.
_SYMBOLS = {
    ">=": "greater_than_or_equal",
    "<=": "less_than_or_equal",
    ">": "greater_than",
    "<": "less_than",
    "=": "equals",
    "==": "equals",
    "!=": "not_equals",
}
_WORD = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")
_UNITS = {
    "minute": "minutes",
    "minutes": "minutes",
    "hour": "hours",
    "hours": "hours",
    "day": "days",
    "days": "days",
    "week": "weeks",
    "weeks": "weeks",
}


@dataclass(frozen=True)
class _Token:
    kind: str  # punct, string, number, word, end
    text: str
    position: int
    value: Any = None

    def describe(self) -> str:
        return "the end of the text" if self.kind == "end" else repr(self.text)


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    i = 0
    while i < len(text):
        match = _TOKEN.match(text, i)
        if not match:
            raise FilterError(f"unexpected character {text[i]!r}", position=i)
        kind = match.lastgroup or ""
        raw = match.group()
        if kind == "string":
            try:
                value: Any = json.loads(raw)
            except ValueError:
                raise FilterError("bad escape in string", position=i) from None
            out.append(_Token(kind, raw, i, value))
        elif kind == "number":
            out.append(_Token(kind, raw, i, json.loads(raw)))
        elif kind == "cmp":
            out.append(_Token(kind, _SYMBOLS[raw], i))
        elif kind != "ws":
            out.append(_Token(kind, raw, i))
        i = match.end()
    out.append(_Token("end", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0
        # id(condition dict) -> where it starts, to place validation errors.
        self.positions: dict[int, int] = {}

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def _next(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def _fail(self, expected: str) -> FilterError:
        return FilterError(
            f"expected {expected}, found {self.tok.describe()}", position=self.tok.position
        )

    def _is(self, kind: str, text: str | None = None) -> bool:
        return self.tok.kind == kind and (text is None or self.tok.text == text)

    def _expect(self, kind: str, text: str, expected: str) -> _Token:
        if not self._is(kind, text):
            raise self._fail(expected)
        return self._next()

    def parse(self) -> dict[str, Any]:
        node = self.expr()
        if self.tok.kind != "end":
            raise self._fail("and, or or the end of the text")
        return node

    def _chain(self, word: str, item: Any) -> dict[str, Any]:
        start = self.tok.position
        nodes = [item()]
        while self._is("word", word):
            self._next()
            nodes.append(item())
        if len(nodes) == 1:
            return nodes[0]
        node = {word: nodes}
        self.positions[id(node)] = start
        return node

    def expr(self) -> dict[str, Any]:
        return self._chain("or", lambda: self._chain("and", self.unary))

    def unary(self) -> dict[str, Any]:
        start = self.tok.position
        if self._is("word", "not"):
            self._next()
            node = {"not": self.unary()}
            self.positions[id(node)] = start
            return node
        if self._is("punct", "("):
            self._next()
            inner = self.expr()
            self._expect("punct", ")", "')'")
            return inner
        node = self.leaf()
        self.positions[id(node)] = start
        return node

    def leaf(self) -> dict[str, Any]:
        if self.tok.kind != "word":
            raise self._fail("a condition (a path, performed, in_segment, in_group, not or '(')")
        word = self._next().text
        if word in ("performed", "not_performed"):
            return self._performed(word)
        if word == "in_segment":
            if self.tok.kind not in ("string", "word"):
                raise self._fail("a segment key")
            token = self._next()
            return {"in_segment": token.value if token.kind == "string" else token.text}
        if word == "in_group":
            if self.tok.kind not in ("string", "word"):
                raise self._fail("a group type")
            token = self._next()
            if self.tok.kind != "string":
                raise self._fail('a group id in quotes, e.g. "acme"')
            group_id = self._next().value
            key = token.value if token.kind == "string" else token.text
            return {"in_group": {"key": key, "id": group_id}}
        if word.startswith("consent."):
            return self._consent(word)
        return self._property(word)

    def _consent(self, word: str) -> dict[str, Any]:
        """consent.<key> is granted|denied"""
        self._expect("word", "is", "is after a consent (consent.marketing is granted)")
        if not (self._is("word", "granted") or self._is("word", "denied")):
            raise self._fail("granted or denied")
        return {"consent": word[len("consent.") :], "is": self._next().text}

    def _property(self, path: str) -> dict[str, Any]:
        if self.tok.kind not in ("word", "cmp"):
            raise self._fail("an operator such as is, contains or greater_than")
        operator_token = self._next()
        name = operator_token.text
        if name == "any_item":
            if self.tok.kind != "word":
                raise self._fail("the operator each item is checked with")
            item_op = self._next()
            item = {"operator": item_op.text}
            value = self._value_for(item_op)
            if value is not None:
                item["value"] = value
            return {"property": path, "operator": name, "item": item}
        node: dict[str, Any] = {"property": path, "operator": name}
        value = self._value_for(operator_token)
        if value is not None:
            node["value"] = value
        return node

    def _value_for(self, operator_token: _Token) -> Any:
        operator = ops.OPERATORS.get(operator_token.text)
        if operator is None:
            raise FilterError(
                f"unknown operator {operator_token.text!r}", position=operator_token.position
            )
        if operator.value == "none":
            return None
        if operator.value == "duration":
            if self.tok.kind != "number":
                raise self._fail("a duration such as 7 days")
            amount = self._next().value
            if not self._is("word") or self.tok.text not in _UNITS:
                raise self._fail("a unit: minutes, hours, days or weeks")
            return {_UNITS[self._next().text]: amount}
        return self.value()

    def value(self) -> Any:
        token = self.tok
        if token.kind in ("string", "number"):
            self._next()
            return token.value
        if token.kind == "word" and token.text in ("true", "false"):
            self._next()
            return token.text == "true"
        if self._is("punct", "["):
            self._next()
            items: list[Any] = []
            if not self._is("punct", "]"):
                items.append(self.value())
                while self._is("punct", ","):
                    self._next()
                    items.append(self.value())
            self._expect("punct", "]", "',' or ']'")
            return items
        raise self._fail('a value: "text", a number, true, false or [a list]')

    def _int(self, name: str) -> int:
        if self.tok.kind != "number" or not isinstance(self.tok.value, int):
            raise self._fail(f"a whole number after {name}")
        return int(self._next().value)

    def _performed(self, word: str) -> dict[str, Any]:
        if self._is("word", "any"):
            self._next()
            event = ANY_EVENT
        elif self.tok.kind == "string":
            event = self._next().value
        else:
            raise self._fail("an event name in quotes, or any")
        node: dict[str, Any] = {word: event}
        if word == "performed" and self._is("word", "at_least"):
            self._next()
            node["at_least"] = self._int("at_least")
        if self._is("word", "within_days"):
            self._next()
            node["within_days"] = self._int("within_days")
        if self._is("word", "where"):
            self._next()
            self._expect("punct", "(", "'(' after where")
            node["where"] = self.expr()
            self._expect("punct", ")", "')'")
        return node


def _find(tree: Any, leaf: str) -> Any:
    """The condition a leaf path (`and[1].where.or[0]`) names in a raw tree."""
    node = tree
    for part in leaf.split(".") if leaf else []:
        name, _, index = part.partition("[")
        try:
            node = node[name]
            if index:
                node = node[int(index.rstrip("]"))]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return node


def parse_text(text: str, *, scope: str = "event") -> dict[str, Any]:
    """Parse the text form into the normalized JSON tree (validated in `scope`; the default
    allows event paths). Errors carry the position of the offending token or condition."""
    if not isinstance(text, str):
        raise FilterError("a text filter is a string")
    if len(text) > MAX_TEXT_LENGTH:
        raise FilterError(f"a text filter has at most {MAX_TEXT_LENGTH} characters", position=0)
    parser = _Parser(text)
    tree = parser.parse()
    try:
        return parse_filter(tree, scope=scope).tree
    except FilterError as exc:
        node = _find(tree, exc.leaf)
        position = parser.positions.get(id(node)) if node is not None else None
        raise FilterError(exc.reason, leaf=exc.leaf, position=position) from None


# --- printing ------------------------------------------------------------------------------------


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _operation(operator: str, value: Any) -> str:
    if value is None:
        return operator
    if ops.OPERATORS[operator].value == "duration":
        ((unit, amount),) = value.items()
        return f"{operator} {amount} {unit}"
    return f"{operator} {_literal(value)}"


def _print(node: dict[str, Any]) -> str:
    for word in ("and", "or"):
        if word in node:
            return f" {word} ".join(_wrapped(child) for child in node[word])
    if "not" in node:
        return f"not {_wrapped(node['not'])}"
    if "property" in node:
        if "item" in node:
            item = node["item"]
            return f"{node['property']} any_item {_operation(item['operator'], item.get('value'))}"
        return f"{node['property']} {_operation(node['operator'], node.get('value'))}"
    for word in ("performed", "not_performed"):
        if word in node:
            event = node[word]
            out = [word, "any" if event == ANY_EVENT else _literal(event)]
            if "at_least" in node:
                out.append(f"at_least {node['at_least']}")
            if "within_days" in node:
                out.append(f"within_days {node['within_days']}")
            if "where" in node:
                out.append(f"where ({_print(node['where'])})")
            return " ".join(out)
    if "in_segment" in node:
        return f"in_segment {_literal(node['in_segment'])}"
    if "consent" in node:
        return f"consent.{node['consent']} is {node['is']}"
    group = node["in_group"]
    key = (
        group["key"]
        if _WORD.fullmatch(group["key"]) and BARE_KEY.fullmatch(group["key"])
        else _literal(group["key"])
    )
    return f"in_group {key} {_literal(group['id'])}"


def _wrapped(node: dict[str, Any]) -> str:
    text = _print(node)
    return f"({text})" if "and" in node or "or" in node else text


def to_text(tree: dict[str, Any]) -> str:
    """Print a filter (validated and normalized first) in the text form."""
    return _print(parse_filter(tree, scope="event").tree)
