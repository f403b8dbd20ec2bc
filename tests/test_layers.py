"""Dependencies run one way: no module under apps/ imports an app on a higher floor."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cdp.layers import FLOORS, check_source, check_tree, floor_of, module_name

BASE_DIR = Path(__file__).resolve().parents[1]


def test_no_module_imports_a_higher_floor() -> None:
    violations = check_tree(BASE_DIR)
    assert not violations, "\n".join(str(v) for v in violations)


def test_the_floors_are_written_once_in_order() -> None:
    assert FLOORS[0] == "accounts"  # API tokens: any app may authenticate with them
    assert FLOORS.index("sources") < FLOORS.index("events")
    assert FLOORS[FLOORS.index("events") :] == (
        "events",
        "profiles",
        "consents",
        "segments",
        "workflows",
        "pipeline",
        "destinations",
        "insights",
    )


def test_every_app_has_a_floor() -> None:
    apps = {p.parent.name for p in (BASE_DIR / "apps").glob("*/apps.py")}
    assert apps <= set(FLOORS), f"add {sorted(apps - set(FLOORS))} to FLOORS in cdp/layers.py"


# --- the checker itself -------------------------------------------------------------------------


def test_the_checker_fails_on_an_upward_import_at_the_top() -> None:
    source = "from apps.segments import services as segment_services\n"
    [violation] = check_source(source, module="apps.profiles.services.merges")
    assert violation.imported == "apps.segments"
    assert "profiles is below segments" in str(violation)


def test_the_checker_fails_on_an_upward_import_inside_a_function() -> None:
    source = "def f():\n    from apps.pipeline.services import events_process\n    return 1\n"
    [violation] = check_source(source, module="apps.events.services")
    assert violation.line == 2
    assert violation.imported.startswith("apps.pipeline")


def test_the_checker_fails_on_import_statements_and_relative_imports() -> None:
    assert check_source("import apps.workflows.engine\n", module="apps.segments.tasks")
    assert check_source(
        "from ..segments import selectors\n", module="apps.profiles.apis", is_package=False
    )


def test_the_checker_accepts_downward_and_same_floor_imports() -> None:
    source = (
        "from apps.events import selectors\n"
        "from apps.profiles.models import Profile\n"
        "from apps.sources.models import EventSource\n"
        "from cdp.tasks import enqueue\n"
        "import django.db\n"
    )
    assert check_source(source, module="apps.profiles.services.people") == []


def test_consents_sit_above_profiles_and_below_segments() -> None:
    # Ingest reaches consents only through the gates consents register, never by import.
    assert check_source("from apps.consents import services\n", module="apps.events.storage")
    assert check_source("from apps.consents import selectors\n", module="apps.profiles.apis")
    assert check_source("from apps.events import services\n", module="apps.consents.services") == []
    assert check_source("from apps.profiles import models\n", module="apps.consents.models") == []
    assert (
        check_source("from apps.consents import selectors\n", module="apps.segments.filtering")
        == []
    )


def test_consents_sit_just_above_profiles() -> None:
    assert check_source("from apps.consents import services\n", module="apps.events.storage")
    assert check_source("from apps.consents import services\n", module="apps.profiles.views")
    assert check_source("from apps.events import services\n", module="apps.consents.services") == []
    assert check_source("from apps.profiles import models\n", module="apps.consents.models") == []
    assert check_source("from apps.segments import models\n", module="apps.consents.privacy")


def test_no_app_imports_the_project_urls() -> None:
    [violation] = check_source("from cdp.urls import urlpatterns\n", module="apps.sources.views")
    assert violation.imported.startswith("cdp.urls")


def test_an_app_split_into_packages_keeps_its_floor() -> None:
    assert floor_of("apps.workflows.services.runs") == FLOORS.index("workflows")
    assert floor_of("apps.insights.queries.funnel") == FLOORS.index("insights")
    assert floor_of("cdp.settings") is None
    assert module_name(BASE_DIR / "apps/profiles/services/__init__.py", BASE_DIR) == (
        "apps.profiles.services",
        True,
    )


def test_the_checker_walks_a_tree(tmp_path: Path) -> None:
    package = tmp_path / "apps" / "events"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "ok.py").write_text("from apps.sources.models import EventSource\n")
    (package / "bad.py").write_text("def f():\n    from apps.pipeline import services\n")
    migrations = package / "migrations"
    migrations.mkdir()
    (migrations / "0001_initial.py").write_text("from apps.insights import models\n")
    [violation] = check_tree(tmp_path)
    assert violation.module == "apps.events.bad"


# --- each module imports on its own -------------------------------------------------------------


def _app_modules() -> list[str]:
    modules = []
    for path in sorted((BASE_DIR / "apps").rglob("*.py")):
        # The modules an import cycle ran through: each app's services, selectors, tasks,
        # apis, admin and views (packages included).
        if path.parent.parent.name != "apps" and path.parent.name != "services":
            continue
        if path.stem not in {"__init__", "services", "selectors", "tasks", "apis", "admin"}:
            continue
        name, _ = module_name(path, BASE_DIR)
        modules.append(name)
    return modules


# Third-party packages load once; each app module is then imported first in a forked child.
_IMPORT_EACH_FIRST = """
import importlib, os, sys
import celery, django, django.contrib.admin, django.db.models, rest_framework.serializers
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            django.setup()
            importlib.import_module(name)
        except BaseException as exc:
            sys.stderr.write(f"{name}: {exc!r}\\n")
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        failed.append(name)
print(" ".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """Importing any app module first (before the admin or the URLs load it) works: no module
    needs another to have been imported before it to get past an import cycle."""
    modules = _app_modules()
    assert "apps.events.services" in modules
    run = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH_FIRST, *modules],
        capture_output=True,
        text=True,
        cwd=BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "cdp.settings"},
        timeout=900,
    )
    assert run.returncode == 0, run.stdout + run.stderr
