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

from jinja2 import ChainableUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from apps.workflows.actions.base import ActionError

_ENV = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
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
    """The syntax error of a template, or None when it compiles."""
    try:
        _compiled(source)
    except TemplateError as exc:
        return f"template error: {exc}"
    return None


def render(source: str, scope: dict[str, Any]) -> Any:
    """Render one template string over the scope (event, profile, session, source, vars)."""
    try:
        kind, template = _compiled(source)
        if kind == "expr":
            value = template(**scope)
            return None if isinstance(value, ChainableUndefined) else value
        return template.render(**scope)
    except TemplateError as exc:
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
