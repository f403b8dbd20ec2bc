"""The floors of the apps, lowest first: a module never imports an app on a higher floor.

tests/test_layers.py checks every module under apps/ against this order (by module path, so an
app split into packages keeps its floor)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Accounts (API tokens) are the ground floor: every app may authenticate with them.
# Consents sit just above profiles: they plug into ingest through the events app's gates.
FLOORS: tuple[str, ...] = (
    "accounts",
    "sources",
    "events",
    "profiles",
    "consents",
    "segments",
    "workflows",
    "pipeline",
    "destinations",
    "insights",
)

# Modules of the project package no app may import (they import every app).
PROJECT_ONLY: tuple[str, ...] = ("cdp.urls", "cdp.asgi", "cdp.wsgi")


@dataclass(frozen=True, slots=True)
class Violation:
    module: str
    line: int
    imported: str
    reason: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported} ({self.reason})"


def floor_of(module: str) -> int | None:
    """The floor of a dotted module name (`apps.<app>...`), or None outside the apps."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "apps":
        return None
    try:
        return FLOORS.index(parts[1])
    except ValueError:
        return None


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(source: str, *, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """Every module a source imports, top-level or inside a function: (line, dotted name).
    `from a import b` yields `a.b` too, since b may be a module."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            yield node.lineno, target
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{target}.{alias.name}"


def check_source(source: str, *, module: str, is_package: bool = False) -> list[Violation]:
    """The upward imports of one module's source."""
    own = floor_of(module)
    found: dict[tuple[int, str], Violation] = {}
    for line, name in imports_of(source, module=module, is_package=is_package):
        project = next((p for p in PROJECT_ONLY if name == p or name.startswith(p + ".")), None)
        if project is not None:
            found[line, project] = Violation(module, line, name, "the project package imports apps")
            continue
        theirs = floor_of(name)
        if own is None or theirs is None or theirs <= own:
            continue
        app = name.split(".")[1]
        if (line, f"apps.{app}") in found:
            continue
        found[line, f"apps.{app}"] = Violation(
            module, line, name, f"{FLOORS[own]} is below {FLOORS[theirs]}"
        )
    return list(found.values())


def module_name(path: Path, root: Path) -> tuple[str, bool]:
    relative = path.relative_to(root).with_suffix("")
    parts = list(relative.parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def app_modules(root: Path) -> Iterable[Path]:
    """Every module under apps/ the layer rule covers (migrations are exempt)."""
    for path in sorted((root / "apps").rglob("*.py")):
        if "migrations" not in path.parts:
            yield path


def check_tree(root: Path) -> list[Violation]:
    """The upward imports of every module under root/apps."""
    violations: list[Violation] = []
    for path in app_modules(root):
        module, is_package = module_name(path, root)
        violations.extend(check_source(path.read_text(), module=module, is_package=is_package))
    return violations
