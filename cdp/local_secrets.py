"""Secrets the settings module needs before Django is set up (so no Django import here).

The embedded default (DEBUG=1 with nothing configured) generates what it needs into the local
`.env` on first run and says so; production sets every secret in its environment."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet

# A fixed Fernet key for the test suite only (settings use it only under pytest): fixtures stay
# decryptable across processes, such as a live server and a Celery worker.
TEST_ENCRYPTION_KEY = "6dxqyyJ4bQx2mN1Hc7c1oYy3N0w8Xb5h3m0a3gJ2n3E="
# The test suite's compliance-hashing key (settings use it only under pytest).
TEST_HASH_SECRET = "test-hash-secret-not-for-production-use-0123456789"  # noqa: S105


def generate_hash_secret() -> str:
    import secrets

    return secrets.token_urlsafe(32)


def generate_fernet_key() -> str:
    return Fernet.generate_key().decode()


def local_secret(name: str, env_file: Path, make: Callable[[], str]) -> str:
    """The value of `name` in the local `.env`, generated and appended on first use."""
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == name and value.strip():
                return value.strip()
    value = make()
    with env_file.open("a") as handle:
        handle.write(
            f"\n# Generated on first run; keep it: stored secrets need it.\n{name}={value}\n"
        )
    print(f"Generated {name} into {env_file} (development only).", file=sys.stderr)
    return value
