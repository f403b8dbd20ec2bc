"""Templates in action configs: `{{ event.properties.plan }}`, `{{ profile.traits.x }}`,
`{{ session.utm_source }}`, `{{ vars.total }}`, rendered by Jinja's sandbox (never eval).

A string that is one expression and nothing else (`"{{ event.properties.count }}"`) keeps the
value's type (a number stays a number); any other template renders to a string. Missing
values render empty (and are None as a whole-string expression), so a template never fails
on an event that lacks a property.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from django.conf import settings
from jinja2 import ChainableUndefined, TemplateError
from jinja2 import nodes as jinja_nodes

from apps.workflows.actions.base import ActionError
from apps.workflows.template_limits import (
    TemplateLimitError,
    bounded_environment,
    render_deadline,
    rendered_text,
)

_ENV = bounded_environment()
# What a failing template raises besides Jinja's own errors (a wrong type, a bad number): the
# template's fault, reported on the node, never a crash of the run.
_TEMPLATE_FAULTS = (TemplateError, ArithmeticError, RecursionError, ValueError, TypeError)
_ONE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}\s*$", re.DOTALL)


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


@lru_cache(maxsize=2048)
def _compiled(source: str) -> Any:
    match = _ONE_EXPRESSION.match(source)
    if match:
        return ("expr", _ENV.compile_expression(match.group("expr"), undefined_to_none=True))
    return ("text", _ENV.from_string(source))


def template_check(source: str) -> str | None:
    """The syntax error of a template, or None when it compiles; also a template that goes
    over the limits by itself (`'x' * 10**8`), found by rendering it over an empty scope."""
    try:
        _compiled(source)
    except TemplateError as exc:
        return f"template error: {exc}"
    try:
        _render(source, {})
    except TemplateLimitError as exc:
        return f"template error: {exc}"
    except _TEMPLATE_FAULTS:
        pass  # it may well work over a real event: checked when it runs
    return None


def _render(source: str, scope: dict[str, Any]) -> Any:
    kind, template = _compiled(source)
    with render_deadline():
        if kind == "expr":
            value = template(**scope)
            return None if isinstance(value, ChainableUndefined) else value
        return rendered_text(template.generate(**scope))


def render(source: str, scope: dict[str, Any]) -> Any:
    """Render one template string over the scope (event, profile, session, source, vars)."""
    try:
        return _render(source, scope)
    except _TEMPLATE_FAULTS as exc:
        raise ActionError(f"template {source!r}: {exc}") from exc


def render_value(value: Any, scope: dict[str, Any]) -> Any:
    """Render every template string inside a config value (dicts and lists included)."""
    if isinstance(value, str):
        return render(value, scope) if is_template(value) else value
    if isinstance(value, dict):
        return {key: render_value(item, scope) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, scope) for item in value]
    return value


def templates_in(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Each template string in a config value with its path, for validation."""
    if isinstance(value, str):
        return [(path, value)] if is_template(value) else []
    if isinstance(value, dict):
        return [
            found
            for key, item in value.items()
            for found in templates_in(item, f"{path}.{key}" if path else str(key))
        ]
    if isinstance(value, list):
        return [
            found
            for index, item in enumerate(value)
            for found in templates_in(item, f"{path}[{index}]")
        ]
    return []


# --- private traits ---------------------------------------------------------------------------

# What a template may read without reaching private traits: under `profile`, these keys.
_PUBLIC_PROFILE_KEYS = ("id", "distinct_id", "traits")


def _access_path(node: Any) -> tuple[Any, list[Any], bool]:
    """For `a.b["c"].d`: (the Name node a, ["b", "c", "d"], whether a key was not a constant
    (then the keys stop before it))."""
    keys: list[Any] = []
    dynamic = False
    while isinstance(node, jinja_nodes.Getattr | jinja_nodes.Getitem):
        if isinstance(node, jinja_nodes.Getattr):
            keys.insert(0, node.attr)
        elif isinstance(node.arg, jinja_nodes.Const):
            keys.insert(0, node.arg.value)
        else:
            keys.clear()  # what follows a computed key is anyone's guess
            dynamic = True
        node = node.node
    return node, keys, dynamic


def _reads_private(name: str, keys: list[Any], dynamic: bool) -> bool:
    if name == "profile":
        return not keys or keys[0] not in _PUBLIC_PROFILE_KEYS
    if name == "event":
        if not keys:
            return True  # the whole event holds its properties
        if keys[0] != "properties":
            return False
        if len(keys) == 1:
            return True  # all the properties, $set_private included
        if keys[1] == "$set_private":
            return True
        if keys[1] in ("$set", "$set_once"):
            return len(keys) == 2 or keys[2] in settings.CDP_PRIVATE_TRAITS
    return False


def _node_reads_private(node: Any) -> bool:
    if isinstance(node, jinja_nodes.Getattr | jinja_nodes.Getitem):
        base, keys, dynamic = _access_path(node)
        if isinstance(base, jinja_nodes.Name) and _reads_private(base.name, keys, dynamic):
            return True
        children = [base] if not isinstance(base, jinja_nodes.Name) else []
        inner: Any = node
        while isinstance(inner, jinja_nodes.Getattr | jinja_nodes.Getitem):
            if isinstance(inner, jinja_nodes.Getitem) and not isinstance(
                inner.arg, jinja_nodes.Const
            ):
                children.append(inner.arg)
            inner = inner.node
        return any(_node_reads_private(child) for child in children)
    if isinstance(node, jinja_nodes.Name):
        return node.ctx == "load" and _reads_private(node.name, [], False)
    return any(_node_reads_private(child) for child in node.iter_child_nodes())


def template_references_private(source: str) -> bool:
    """Whether a template can read private traits: `profile.private_traits...`, the whole
    `profile` or `event`, or the private payloads of an identify event
    (`event.properties["$set_private"]`, private names in `$set`). A template that does not
    parse reads nothing."""
    if not is_template(source):
        return False
    try:
        tree = _ENV.parse(source)
    except TemplateError:
        return False
    return _node_reads_private(tree)


def path_references_private(dotted: str) -> bool:
    """The same question for a dotted path (copy_property's `from`: event.properties.x)."""
    name, *keys = dotted.split(".")
    return _reads_private(name, keys, False)
