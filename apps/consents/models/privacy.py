"""Privacy requests (export, delete, suppress, unsuppress), the suppression tombstones they
leave, the install secret that keys those tombstones, and the export archives."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from cdp.crypto import EncryptedTextField


class PrivacyRequestKind(models.TextChoices):
    EXPORT = "export", "Export"
    DELETE = "delete", "Delete"
    SUPPRESS = "suppress", "Suppress"
    SUPPRESS_AND_DELETE = "suppress_and_delete", "Suppress and delete"
    UNSUPPRESS = "unsuppress", "Unsuppress"


class PrivacyRequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class PrivacyRequest(models.Model):
    """One data subject request, and its audit record once done.

    While it is pending or running it names its subject (`distinct_id`); a finished delete,
    suppress or unsuppress forgets it (and an export forgets it when its archive expires), so
    what stays is personal-data free: the kind, who asked, when, the counts and a keyed digest
    of the id (the same id asked about again gives the same digest)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=24, choices=PrivacyRequestKind)
    status = models.CharField(
        max_length=10, choices=PrivacyRequestStatus, default=PrivacyRequestStatus.PENDING
    )
    distinct_id = models.CharField(
        max_length=200, blank=True, help_text="The subject; cleared once no longer needed."
    )
    subject_digest = models.CharField(max_length=64, db_index=True, editable=False)
    reference = models.CharField(
        max_length=200,
        blank=True,
        help_text="Your reference (a ticket number): never personal data, it is kept.",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Rows counted before the work started, and rows done so far, per table.
    totals = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Moved by every batch: a running request whose heartbeat stopped lost its worker.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("download_privacy_export", "Can download a privacy export (all of one person's data)")
        ]
        indexes = [
            models.Index(
                fields=["heartbeat_at"],
                condition=models.Q(status="running"),
                name="consents_privreq_running_idx",
            )
        ]

    def __str__(self) -> str:
        # No personal data: this ends up in the admin log and titles.
        return f"{self.get_kind_display()} request {self.pk}"

    @property
    def progress(self) -> float | None:
        """Done / total rows, between 0 and 1 (None before the rows were counted)."""
        if not self.totals:
            return None
        total = sum(int(v) for v in self.totals.values())
        if self.status == PrivacyRequestStatus.DONE or total == 0:
            return 1.0
        done = sum(int(self.counts.get(k, 0)) for k in self.totals)
        return min(1.0, done / total)


class Suppression(models.Model):
    """A tombstone: the keyed digest (HMAC-SHA256 under the install's suppression key) of one
    identity of a suppressed person. Ingest drops events from an id whose digest is here."""

    digest = models.CharField(max_length=64, unique=True)
    request = models.ForeignKey(
        PrivacyRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"suppressed {self.digest[:12]}…"


class SuppressionKey(models.Model):
    """The install secret keying the tombstones: random, made once, encrypted at rest (so
    neither a database dump nor SECRET_KEY alone lets anyone test a guess against them)."""

    key = EncryptedTextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return "suppression key"


class PrivacyExport(models.Model):
    """The archive of an export request (an NDJSON zip), kept until `expires_at`."""

    request = models.OneToOneField(
        PrivacyRequest, on_delete=models.CASCADE, related_name="export", primary_key=True
    )
    content = models.BinaryField()
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"export of {self.request_id}"
