"""Writes on event sources."""

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.sources import selectors
from apps.sources.bridges import INTERNAL, bridge_config_errors
from apps.sources.models import EventSource, generate_write_key
from cdp.errors import DomainError

logger = logging.getLogger(__name__)


def source_create(
    *,
    name: str,
    ephemeral: bool = False,
    requires_consent: bool = False,
    allowed_origins: list[str] | None = None,
    session_timeout_minutes: int = 30,
    rate_limit_per_second: int = 2000,
    with_profiles: bool = True,
) -> EventSource:
    source = EventSource(
        name=name,
        with_profiles=with_profiles,
        ephemeral=ephemeral,
        requires_consent=requires_consent,
        allowed_origins=allowed_origins or [],
        session_timeout_minutes=session_timeout_minutes,
        rate_limit_per_second=rate_limit_per_second,
    )
    source.full_clean()
    source.save()
    return source


def source_rotate_write_key(*, source: EventSource) -> EventSource:
    """Give the source a new write key; the old one stops working at once in this process and
    within CDP_SOURCE_CACHE_SECONDS in the others."""
    old_key = source.write_key
    source.write_key = generate_write_key()
    source.write_key_rotated_at = timezone.now()
    source.save(update_fields=["write_key", "write_key_rotated_at", "updated_at"])
    transaction.on_commit(lambda: source_cache_changed(write_keys=[old_key]))
    return source


def source_set_enabled(*, source: EventSource, enabled: bool) -> EventSource:
    source.enabled = enabled
    source.save(update_fields=["enabled", "updated_at"])
    transaction.on_commit(lambda: source_cache_changed(write_keys=[source.write_key]))
    return source


def source_set_with_profiles(*, source: EventSource, with_profiles: bool) -> EventSource:
    """Whether the source's events create and update profiles (off: personless events, unless
    an event says otherwise). Events already stored keep what they were stored as."""
    source.with_profiles = with_profiles
    source.save(update_fields=["with_profiles", "updated_at"])
    transaction.on_commit(lambda: selectors.source_cache_clear(source.write_key))
    return source


def source_set_bridge(
    *,
    source: EventSource,
    bridge: str,
    config: dict[str, Any] | None = None,
    secret: str | None = None,
) -> EventSource:
    """Point the source at a bridge with its settings. secret: None keeps the stored one, ""
    removes it; it is stored encrypted and never read back by the admin or the API."""
    errors = bridge_config_errors(bridge, config if config is not None else {})
    if errors:
        raise DomainError(f"Bridge settings: {'; '.join(errors)}", field="config")
    source.bridge = bridge
    source.bridge_config = config or {}
    fields = ["bridge", "bridge_config", "updated_at"]
    if secret is not None:
        source.bridge_secret = secret
        fields.append("bridge_secret")
    source.save(update_fields=fields)
    return source


def source_cache_changed(*, write_keys: list[str] | None = None) -> None:
    """A source changed (saved, deleted, its key rotated): drop it from this process's cache
    now and tell the other processes (they check every CDP_SHARED_VERSION_CHECK_SECONDS)."""
    if write_keys is None:
        selectors.source_cache_clear()
    for key in write_keys or []:
        selectors.source_cache_clear(key)
    selectors.SOURCES_VERSION.changed()


INTERNAL_SOURCE_NAME = "Internal events"


def source_internal() -> EventSource:
    """The source of events the platform emits itself (segment_entered, workflow events).

    Created on first use; it has a write key like any source but nothing outside posts to it."""
    source = EventSource.objects.filter(bridge=INTERNAL.key).order_by("created_at").first()
    if source is None:
        source = EventSource(name=INTERNAL_SOURCE_NAME, bridge=INTERNAL.key)
        source.full_clean()
        source.save()
    return source
