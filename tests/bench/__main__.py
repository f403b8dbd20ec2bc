"""Run the benchmarks: every module of tests/bench that has a main(), or the ones named.

    python -m tests.bench                       # all of them, one after the other
    python -m tests.bench ingest merge          # only these
    python -m tests.bench ingest -- --rounds 1  # arguments after -- go to each main()
    python -m tests.bench --list

Each benchmark runs in its own Python process (they set Django up and create throw-away
databases of their own), so one can't leave state behind for the next. The exit status is
non-zero when any benchmark failed or missed its target.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = __spec__.parent if __spec__ and __spec__.parent else "tests.bench"


def discover() -> list[str]:
    """Modules of this package that define a top-level main(), by name. Read, not imported:
    importing a benchmark may need Django set up."""
    names = []
    for path in sorted(HERE.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
            names.append(path.stem)
    return names


def run(name: str, args: list[str]) -> int:
    code = f"import sys; from {PACKAGE} import {name}; sys.exit({name}.main())"
    return subprocess.call([sys.executable, "-c", code, *args])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    passed: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, passed = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(prog=f"python -m {PACKAGE}", description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    options = parser.parse_args(argv)

    available = discover()
    if options.list:
        print("\n".join(available))
        return 0
    unknown = sorted(set(options.names) - set(available))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; there are {available}")
    names = options.names or available

    results: list[tuple[str, int, float]] = []
    for name in names:
        print(f"=== {name} ===", flush=True)
        started = time.monotonic()
        status = run(name, passed)
        results.append((name, status, time.monotonic() - started))
    print("=== summary ===")
    for name, status, took in results:
        verdict = "ok" if status == 0 else f"FAILED (exit {status})"
        print(f"{name:<12} {verdict:<18} {took:7.1f} s")
    return 0 if all(status == 0 for _, status, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
