"""The vendored front-end assets are the files recorded (version, license, checksum)."""

import hashlib
import json
from pathlib import Path

import pytest
from django.conf import settings

VENDOR = Path(settings.BASE_DIR) / "static" / "vendor"
RECORD = json.loads((VENDOR / "VENDORED.json").read_text())


@pytest.mark.parametrize("name", sorted(RECORD))
def test_vendored_file_matches_its_recorded_checksum(name: str) -> None:
    entry = RECORD[name]
    digest = hashlib.sha256((VENDOR / name).read_bytes()).hexdigest()
    assert digest == entry["sha256"], f"{name} changed: re-vendor it and update VENDORED.json"
    assert entry["version"]
    assert entry["license"]
    assert (VENDOR / entry["license_file"]).read_text().strip()


def test_templates_load_no_script_from_another_origin() -> None:
    templates = Path(settings.BASE_DIR) / "templates"
    for path in templates.rglob("*.html"):
        text = path.read_text()
        for outside in ("//cdn", "unpkg.com", "jsdelivr", 'src="http', 'href="http'):
            assert outside not in text, f"{path} loads {outside}"
