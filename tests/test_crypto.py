"""Secrets at rest (cdp/crypto.py): encryption under the first key, rotation, clear errors."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from cdp import crypto

from .test_settings import SHOW_SETTINGS, production_secret, run_python


def key() -> str:
    return Fernet.generate_key().decode()


def test_a_secret_round_trips_and_is_not_stored_in_plain(settings):
    settings.CDP_ENCRYPTION_KEYS = [key()]

    token = crypto.encrypt("s3cret-password")

    assert "s3cret" not in token
    assert crypto.decrypt(token) == "s3cret-password"
    assert crypto.encrypt("s3cret-password") != token  # a fresh nonce each time


def test_a_wrong_key_raises_a_clear_error_never_the_ciphertext(settings):
    settings.CDP_ENCRYPTION_KEYS = [key()]
    token = crypto.encrypt("value")
    settings.CDP_ENCRYPTION_KEYS = [key()]

    with pytest.raises(crypto.DecryptionError, match="CDP_ENCRYPTION_KEYS"):
        crypto.decrypt(token)
    with pytest.raises(crypto.DecryptionError, match="corrupt"):
        crypto.decrypt("not-a-token")


def test_rotation_re_encrypts_under_the_new_first_key(settings):
    old, new = key(), key()
    settings.CDP_ENCRYPTION_KEYS = [old]
    token = crypto.encrypt("value")

    settings.CDP_ENCRYPTION_KEYS = [new, old]  # the new key first, the old one still decrypts
    rotated = crypto.rotate(token)

    settings.CDP_ENCRYPTION_KEYS = [new]  # the old key dropped
    assert crypto.decrypt(rotated) == "value"
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token)


def test_a_malformed_key_is_named_by_its_position(settings):
    settings.CDP_ENCRYPTION_KEYS = [key(), "too-short"]

    with pytest.raises(ImproperlyConfigured, match="Key 2 of CDP_ENCRYPTION_KEYS"):
        crypto.encrypt("value")


def test_the_embedded_default_generates_a_key_into_its_local_env_once(settings, tmp_path, capsys):
    env_file = tmp_path / ".env"
    env_file.write_text("DEBUG=1\n")
    settings.DEBUG = True
    settings.CDP_LOCAL_ENV_FILE = env_file
    settings.CDP_ENCRYPTION_KEYS = []

    token = crypto.encrypt("value")
    crypto._fernet.cache_clear()  # a restart: the key is read back from the file

    assert crypto.decrypt(token) == "value"
    assert env_file.read_text().count("CDP_ENCRYPTION_KEYS=") == 1
    assert "Generated CDP_ENCRYPTION_KEYS" in capsys.readouterr().err


def test_production_refuses_to_start_without_a_key():
    result = run_python(SHOW_SETTINGS, SECRET_KEY=production_secret(), ALLOWED_HOSTS="example.com")

    assert result.returncode != 0
    assert "ImproperlyConfigured: Set CDP_ENCRYPTION_KEYS" in result.stderr
