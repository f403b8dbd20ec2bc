"""Helpers live in tests/factories.py, tests/clients.py and tests/users.py: conftest files hold
fixtures only, and no test imports from one (pytest loads conftest files itself; importing
them as modules runs them twice and hides where a helper lives)."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_no_test_imports_from_a_conftest() -> None:
    pattern = re.compile(r"^\s*from\s+\S*conftest\s+import|^\s*import\s+\S*conftest", re.M)
    offenders = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert not offenders, f"import these helpers from tests/factories.py instead: {offenders}"
