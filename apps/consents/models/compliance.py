"""Data-compliance rules: what to do with a property when consent for it is missing."""

from __future__ import annotations

from django.db import models

from apps.consents.models.consents import ConsentType


class ComplianceAction(models.TextChoices):
    REMOVE = "remove", "Remove the value"
    HASH = "hash", "Hash it (keyed HMAC-SHA256)"
    MASK = "mask", "Mask it, keeping its shape (j***@example.com)"


class ComplianceRule(models.Model):
    """Applied at ingest, before storage: on events named `event_name` (empty: every event),
    the value at `path` is removed, hashed or masked unless the person holds every consent
    type in `consent_types` (none listed: always)."""

    name = models.CharField(max_length=200)
    event_name = models.CharField(max_length=255, blank=True, help_text="Empty: every event.")
    path = models.CharField(
        max_length=500,
        help_text=(
            "properties.email, properties.items[].email, context.traits.email, or traits.email "
            "(the traits an identify call sets, public or private)."
        ),
    )
    action = models.CharField(max_length=10, choices=ComplianceAction)
    consent_types = models.ManyToManyField(
        ConsentType,
        blank=True,
        related_name="compliance_rules",
        help_text="The rule applies when the person lacks any of these; none: always.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name
