"""Consent types and a profile's consents: the current decision per type and its history."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models

from apps.profiles.models import Profile
from apps.sources.models import EventSource

CONSENT_KEY = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{0,99}$",
    "A key is 1 to 100 lowercase letters, digits, '_' or '-', starting with a letter or digit.",
)


class ConsentDefault(models.TextChoices):
    GRANTED = "granted", "Granted"
    DENIED = "denied", "Denied"


class ConsentType(models.Model):
    """What a person may consent to (marketing e-mails, analytics, advertising...)."""

    key = models.CharField(max_length=100, unique=True, validators=[CONSENT_KEY])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    revokable = models.BooleanField(
        default=True, help_text="A person may withdraw it once granted."
    )
    default = models.CharField(
        max_length=10,
        choices=ConsentDefault,
        default=ConsentDefault.DENIED,
        help_text="The state of a person who never decided.",
    )
    required = models.BooleanField(
        default=False,
        help_text="Sources that require consent store nothing of a person without it.",
    )
    auto_revoke_after = models.DurationField(
        null=True,
        blank=True,
        help_text="A grant expires this long after it is given ('365 00:00:00'); empty: never.",
    )
    denied_by_gpc = models.BooleanField(
        default=False,
        help_text="A request with the Global Privacy Control header (Sec-GPC: 1) denies it.",
    )
    tags = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key

    @property
    def granted_by_default(self) -> bool:
        return self.default == ConsentDefault.GRANTED


class ConsentChannel(models.TextChoices):
    API = "api", "Tracking API (POST /api/consent)"
    TRACKER = "tracker", "Browser tracker"
    SEGMENT = "segment", "Segment consent context"
    GPC = "gpc", "Global Privacy Control"
    ADMIN = "admin", "Admin or management API"
    EXPIRY = "expiry", "Expired (auto-revoke)"
    MERGE = "merge", "Profile merge"


class ProfileConsent(models.Model):
    """A profile's current decision on one consent type (no row: the type's default)."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="consents")
    consent_type = models.ForeignKey(ConsentType, on_delete=models.CASCADE, related_name="+")
    granted = models.BooleanField()
    decided_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    channel = models.CharField(max_length=20, choices=ConsentChannel)
    source = models.ForeignKey(
        EventSource, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "consent_type"], name="consents_one_decision_per_type"
            )
        ]
        indexes = [
            models.Index(
                fields=["expires_at"],
                condition=models.Q(granted=True, expires_at__isnull=False),
                name="consents_expiring_grants",
            )
        ]

    def __str__(self) -> str:
        return f"{self.consent_type_id}: {'granted' if self.granted else 'denied'}"


class ConsentChange(models.Model):
    """One change of a profile's consent: who or what changed it, when, from what to what."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="consent_changes")
    consent_type = models.ForeignKey(ConsentType, on_delete=models.CASCADE, related_name="+")
    granted = models.BooleanField()
    previous = models.BooleanField(null=True, help_text="Empty: no decision before.")
    at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    channel = models.CharField(max_length=20, choices=ConsentChannel)
    source = models.ForeignKey(
        EventSource, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    distinct_id = models.CharField(max_length=200, blank=True)
    actor = models.CharField(max_length=255, blank=True, help_text="The staff user, if any.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["profile", "-at"], name="consents_change_profile_at")]

    def __str__(self) -> str:
        return f"{self.consent_type_id} {'granted' if self.granted else 'denied'} at {self.at}"
