"""Event sources: where events come from, with the write key that authenticates them."""

import secrets
import uuid

from django.core.exceptions import ValidationError
from django.db import models

from apps.sources.bridges import REST_API, bridge_choices, bridge_config_errors
from cdp.crypto import EncryptedTextField


def generate_write_key() -> str:
    return secrets.token_urlsafe(24)


class EventSource(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    bridge = models.CharField(max_length=50, choices=bridge_choices, default=REST_API.key)
    write_key = models.CharField(
        max_length=64, unique=True, default=generate_write_key, editable=False
    )
    enabled = models.BooleanField(default=True)
    ephemeral = models.BooleanField(
        default=False, help_text="Events are processed but never stored."
    )
    with_profiles = models.BooleanField(
        default=True,
        help_text=(
            "Events create and update profiles. Off: they are stored, sessionized and routed "
            "by rules but personless (no profile, identity, traits or counters); an event's "
            "own profile flag overrides this. Identify, alias and group calls always act on "
            "profiles."
        ),
    )
    requires_consent = models.BooleanField(
        default=False, help_text="Browser trackers send nothing until the visitor consents."
    )
    session_timeout_minutes = models.PositiveIntegerField(
        default=30, help_text="Inactivity after which the next event starts a new session."
    )
    allowed_origins = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            'Browser origins allowed to send events, e.g. ["https://shop.example.com"]. '
            'Empty or ["*"]: any origin.'
        ),
    )
    rate_limit_per_second = models.PositiveIntegerField(
        default=2000, help_text="Events per second accepted from this source; 0: no limit."
    )
    bridge_config = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            "The bridge's settings: for a webhook, how a body becomes an event "
            '(e.g. {"event_name": "$.type", "distinct_id": "$.data.customer", '
            '"properties": "$.data"}); see docs/bridges.md.'
        ),
    )
    bridge_secret = EncryptedTextField(
        blank=True,
        default="",
        help_text="Webhook bridge: the HMAC secret signatures are checked with (never shown).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    write_key_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        permissions = [("rotate_write_key", "Can rotate a source's write key")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = bridge_config_errors(self.bridge, self.bridge_config)
        if errors:
            raise ValidationError({"bridge_config": errors})

    def origin_allowed(self, origin: str) -> bool:
        origins = self.allowed_origins or []
        return (
            not origins or "*" in origins or origin.rstrip("/") in {o.rstrip("/") for o in origins}
        )
