"""Secrets at rest: one MultiFernet for the whole project, keyed apart from SECRET_KEY.

`CDP_ENCRYPTION_KEYS` holds comma-separated Fernet keys; the first one encrypts, every one
decrypts, so a new key is added in front and `manage.py rotate_encryption_key` re-encrypts the
stored values under it before the old key is dropped. Production refuses to start without a key;
the embedded default (DEBUG=1) writes one into the local `.env` on first run and says so.

`EncryptedTextField` and `EncryptedJSONField` store only ciphertext: the database (and any dump
of it) never holds the plaintext. A wrong key or a corrupt token raises `DecryptionError`, which
names the setting to fix; ciphertext is never handed back as if it were the value.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import models
from django.dispatch import receiver

from cdp.local_secrets import generate_fernet_key, local_secret

ENV_VAR = "CDP_ENCRYPTION_KEYS"


class DecryptionError(Exception):
    """A stored secret that no configured key opens (wrong key, or a corrupt value)."""


def keys_from_settings() -> list[str]:
    keys = [k.strip() for k in getattr(settings, "CDP_ENCRYPTION_KEYS", []) if k.strip()]
    if not keys and settings.DEBUG:
        # The embedded default: a key of its own in the local .env, made on first use.
        keys = [local_secret(ENV_VAR, settings.CDP_LOCAL_ENV_FILE, generate_fernet_key)]
    if not keys:
        raise ImproperlyConfigured(
            f"Set {ENV_VAR} to one or more Fernet keys, comma-separated (the first encrypts). "
            'Make one with `python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"`.'
        )
    return keys


@functools.cache
def _fernet() -> MultiFernet:
    fernets = []
    for position, key in enumerate(keys_from_settings(), start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError) as exc:
            raise ImproperlyConfigured(
                f"Key {position} of {ENV_VAR} is not a Fernet key (32 url-safe base64 bytes)."
            ) from exc
    return MultiFernet(fernets)


@receiver(setting_changed)
def _reset(setting: str, **kwargs: Any) -> None:
    if setting == "CDP_ENCRYPTION_KEYS":
        _fernet.cache_clear()


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError(
            f"A stored secret cannot be decrypted with the keys in {ENV_VAR}: the key that "
            "encrypted it is missing, or the value is corrupt. Restore the old key (add it after "
            "the current one) and run `manage.py rotate_encryption_key`."
        ) from exc


def rotate(token: str) -> str:
    """The same secret encrypted under the first key (what a key rotation writes back)."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError(
            f"A stored secret cannot be decrypted with the keys in {ENV_VAR}, so it cannot be "
            "re-encrypted: add the key that encrypted it after the new one."
        ) from exc


class EncryptedTextField(models.TextField):
    """A text column that holds only Fernet ciphertext; Python code sees the plaintext."""

    description = "Text encrypted at rest"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)


class EncryptedJSONField(models.TextField):
    """A JSON value (a dict of credentials, say) stored as one Fernet token."""

    description = "JSON encrypted at rest"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        if value is None or value == "":
            return None if value is None else {}
        return json.loads(decrypt(value))

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def get_prep_value(self, value: Any) -> Any:
        if value is None:
            return None
        return encrypt(json.dumps(value, sort_keys=True, separators=(",", ":")))

    def value_to_string(self, obj: models.Model) -> str:
        return json.dumps(self.value_from_object(obj))


def encrypted_fields() -> list[tuple[type[models.Model], str]]:
    """Every (model, field name) holding ciphertext, for the rotation command."""
    from django.apps import apps

    found = []
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, (EncryptedTextField, EncryptedJSONField)):
                found.append((model, field.attname))
    return found
