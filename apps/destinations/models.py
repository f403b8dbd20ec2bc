"""Resources (typed connections with encrypted production and test credentials), destinations
(a resource + a trigger + a mapping + on/off), and the delivery outbox with its attempt log."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q

from cdp.crypto import EncryptedJSONField


class ResourceKind(models.TextChoices):
    WEBHOOK = "webhook", "Webhook / HTTP API"
    SMTP = "smtp", "SMTP server"
    REDIS = "redis", "Redis"
    POSTGRES = "postgres", "PostgreSQL database"
    KAFKA = "kafka", "Kafka cluster"


class Resource(models.Model):
    """A connection to another system. `credentials` (production) and `test_credentials` (test
    mode of workflows, "send test") are encrypted at rest and never shown back in full."""

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=ResourceKind)
    description = models.TextField(blank=True)
    # Typed as what Python code sees (a dict); the column holds only ciphertext.
    credentials: Any = EncryptedJSONField(default=dict, blank=True)
    test_credentials: Any = EncryptedJSONField(default=dict, blank=True)
    internal = models.BooleanField(
        default=False,
        help_text="Lets connections reach loopback, private and link-local addresses "
        "(only an admin with the 'mark resource internal' permission may set it).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("test_resource", "Can test a resource's connection"),
            ("mark_resource_internal", "Can let a resource reach internal addresses"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Trigger(models.TextChoices):
    PROFILE_CHANGED = "profile_changed", "Profile changed"
    SEGMENT_ENTERED = "segment_entered", "Segment entered"
    SEGMENT_EXITED = "segment_exited", "Segment exited"
    EVENT = "event", "Events matching a filter"
    WORKFLOW = "workflow", "Workflow node send_to_destination"


class MappingMode(models.TextChoices):
    DEFAULT = "default", "The standard payload"
    TEMPLATE = "template", "A template (JSON whose strings are Jinja templates)"
    FIELDS = "fields", "A field mapping (target path: source path)"


class Destination(models.Model):
    """Where profiles and events go: a resource, a trigger, a mapping, and on/off."""

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=50, help_text="A destination type of the registry.")
    resource = models.ForeignKey(Resource, on_delete=models.PROTECT, related_name="destinations")
    trigger = models.CharField(max_length=30, choices=Trigger)
    trigger_config = models.JSONField(default=dict, blank=True)
    mapping_mode = models.CharField(max_length=20, choices=MappingMode, default=MappingMode.DEFAULT)
    mapping = models.JSONField(default=dict, blank=True)
    settings = models.JSONField(default=dict, blank=True)
    required_consents = models.JSONField(
        default=list, blank=True, help_text="Consent type keys a profile must have granted."
    )
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=500, blank=True)
    # The circuit breaker: consecutive failed attempts, and until when nothing is sent.
    consecutive_failures = models.PositiveIntegerField(default=0)
    circuit_opens = models.PositiveIntegerField(default=0)
    circuit_open_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("test_destination", "Can send a test delivery"),
            ("replay_delivery", "Can replay deliveries"),
        ]

    def __str__(self) -> str:
        return self.name


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    DEAD = "dead", "Dead (attempts exhausted)"
    SUPERSEDED = "superseded", "Superseded by a later state"


UNFINISHED = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)


class Delivery(models.Model):
    """One message to a destination: written in the transaction of the change that causes it,
    unique by its idempotency key (sent along as webhook-id)."""

    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="deliveries"
    )
    key = models.CharField(max_length=200)
    trigger = models.CharField(max_length=30)
    profile_id = models.UUIDField(null=True, blank=True)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=20, choices=DeliveryStatus, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["destination", "key"], name="delivery_key_unique")
        ]
        indexes = [
            models.Index(
                fields=["destination", "next_attempt_at"],
                name="delivery_due",
                condition=Q(status__in=["pending", "sending"]),
            ),
            models.Index(fields=["destination", "profile_id", "id"], name="delivery_profile"),
            models.Index(fields=["destination", "status", "created_at"], name="delivery_status"),
        ]

    def __str__(self) -> str:
        return f"{self.destination_id}:{self.key} ({self.status})"


class DeliveryAttempt(models.Model):
    """The delivery log: one row per attempt (response code, latency, a capped body snippet)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="log")
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()
    ok = models.BooleanField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    response_snippet = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["destination", "at"], name="attempt_destination_at")]

    def __str__(self) -> str:
        outcome = "ok" if self.ok else "failed"
        return f"{self.delivery_id} at {self.at:%Y-%m-%d %H:%M:%S} ({outcome})"


class ProfileSyncState(models.Model):
    """What a profile destination last queued for a profile (a hash of the watched state), so
    that an unchanged profile queues nothing and each change gets the next sequence number."""

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="+")
    profile_id = models.UUIDField()
    state_hash = models.CharField(max_length=64)
    sequence = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["destination", "profile_id"], name="profile_sync_state_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.destination_id}:{self.profile_id} #{self.sequence}"
