"""The vendored analytics-js (static/vendor/rudderstack) is the recorded file, byte for byte the
bundled build of the npm package that tests/sdk/node pins."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

VENDOR = Path(settings.BASE_DIR) / "static" / "vendor"
RECORD = json.loads((VENDOR / "VENDORED.json").read_text())
OURS = sorted(name for name in RECORD if name.startswith("rudderstack/"))
NODE_DIR = Path(settings.BASE_DIR) / "tests" / "sdk" / "node"


def test_analytics_js_is_recorded() -> None:
    assert OURS == ["rudderstack/rsa.js"]


@pytest.mark.parametrize("name", OURS)
def test_vendored_file_matches_its_recorded_checksum(name: str) -> None:
    entry = RECORD[name]
    digest = hashlib.sha256((VENDOR / name).read_bytes()).hexdigest()
    assert digest == entry["sha256"], f"{name} changed: re-vendor it and update VENDORED.json"
    assert entry["version"]
    assert entry["license"] == "MIT"
    assert "Permission is hereby granted" in (VENDOR / entry["license_file"]).read_text()


def test_vendored_build_is_the_pinned_npm_package_unmodified() -> None:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("node and npm are not installed: needed to compare with the npm package")
    package = NODE_DIR / "node_modules" / "@rudderstack" / "analytics-js"
    if not package.is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300
        )
    entry = RECORD["rudderstack/rsa.js"]
    pinned = json.loads((package / "package.json").read_text())["version"]
    assert pinned == entry["version"], "tests/sdk/node pins another version: re-vendor it"
    bundled = package / "dist" / "npm" / "modern" / "bundled" / "umd" / "index.js"
    assert (VENDOR / "rudderstack" / "rsa.js").read_bytes() == bundled.read_bytes()
