"""Profiles (one per person), the identities that point at them, merges, and groups.

Events keep the distinct_id they were sent with; `Identity` maps each distinct_id to its
profile, so a merge moves identity rows (O(identities)), never event rows.
"""

import uuid

from django.conf import settings
from django.db import models


class Profile(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    traits = models.JSONField(default=dict, blank=True)
    private_traits = models.JSONField(
        default=dict, blank=True, help_text="PII (email, name, phone): shown only with permission."
    )
    # "traits.plan" / "private_traits.email" -> {"at": ISO time of the write, "once": bool}.
    # Merges use it: last write wins, set_once keeps the oldest.
    trait_meta = models.JSONField(default=dict, blank=True, editable=False)
    first_seen = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    event_count = models.PositiveBigIntegerField(default=0)
    session_count = models.PositiveIntegerField(default=0)
    identified = models.BooleanField(default=False)
    # Set when this profile was merged: reading it answers with the survivor.
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_profiles"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [("view_private_traits", "Can view private traits (PII)")]
        indexes = [
            models.Index(fields=["-last_seen"], name="profiles_last_seen_idx"),
            models.Index(fields=["-first_seen"], name="profiles_first_seen_idx"),
        ]

    def __str__(self) -> str:
        # No private traits here: __str__ ends up in admin titles, logs and choices, which
        # users without the private-traits permission see.
        label = self.traits.get("name") if isinstance(self.traits, dict) else None
        return f"{label} ({self.pk})" if isinstance(label, str) and label else str(self.pk)


class IdentityKind(models.TextChoices):
    ANONYMOUS = "anonymous", "Anonymous id"
    USER_ID = "user_id", "User id"
    ALIAS = "alias", "Alias"
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone"
    DEVICE = "device", "Device id"
    CUSTOM = "custom", "Custom identifier"


class Identity(models.Model):
    """One distinct_id, and the profile it belongs to."""

    distinct_id = models.CharField(max_length=200, unique=True)
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=20, choices=IdentityKind, default=IdentityKind.ANONYMOUS)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "identities"
        indexes = [models.Index(fields=["profile", "kind"], name="profiles_identity_prof_idx")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.distinct_id}"


class MergeTrigger(models.TextChoices):
    IDENTIFY = "identify", "identify call"
    ALIAS = "alias", "alias call"
    IDENTIFICATION_POINT = "identification_point", "identification point"
    ADMIN = "admin", "admin"
    API = "api", "management API"


class ProfileMerge(models.Model):
    """A merge that happened: enough to show it in the history and to undo it."""

    survivor = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="merges_in")
    merged = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="merges_out")
    trigger = models.CharField(max_length=30, choices=MergeTrigger)
    # Who or what: a user name, an event's message id, an identification point's name.
    triggered_by = models.CharField(max_length=255, blank=True)
    moved_distinct_ids = models.JSONField(default=list)
    # The merged profile as it was, so an unmerge can restore it.
    merged_snapshot = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.merged_id} -> {self.survivor_id}"


class MergeConflict(models.Model):
    """A merge that was refused (two different known users): admins see and can act on it."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="conflicts")
    other_profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="+")
    trigger = models.CharField(max_length=30, choices=MergeTrigger)
    triggered_by = models.CharField(max_length=255, blank=True)
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"refused: {self.profile_id} / {self.other_profile_id}"


class IdentificationPoint(models.Model):
    """On an event (of a type, from a source), a trait or property that identifies a person:
    a match with another profile merges the two."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email (case and spaces normalised)"
        PHONE = "phone", "Phone (digits, leading +)"
        CUSTOM = "custom", "Custom (trimmed)"

    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    source = models.ForeignKey(
        "sources.EventSource",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        help_text="Only events from this source; empty: any source.",
    )
    event_name = models.CharField(
        max_length=255, blank=True, help_text="Only events of this name; empty: any event."
    )
    field = models.CharField(
        max_length=255,
        help_text='Where the identifier is: "properties.email", "traits.email", '
        '"context.traits.phone".',
    )
    kind = models.CharField(max_length=20, choices=Kind, default=Kind.EMAIL)
    store_hashed = models.BooleanField(
        default=False, help_text="Store only a SHA-256 of the normalised identifier."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class GroupType(models.Model):
    """A kind of group: company, workspace, team..."""

    key = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name or self.key


class Group(models.Model):
    group_type = models.ForeignKey(GroupType, on_delete=models.CASCADE, related_name="groups")
    group_id = models.CharField(max_length=200)
    properties = models.JSONField(default=dict, blank=True)
    property_meta = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    members = models.ManyToManyField(Profile, through="GroupMembership", related_name="groups")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group_type", "group_id"], name="profiles_group_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.group_type.key}:{self.group_id}"


class GroupMembership(models.Model):
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="memberships")
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "group"], name="profiles_membership_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.profile_id} in {self.group_id}"


class ProfileHistory(models.Model):
    """What changed a profile, in order: merges, unmerges, identifications, refused merges."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="history")
    action = models.CharField(max_length=40)
    detail = models.JSONField(default=dict)
    actor = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "profile history"

    def __str__(self) -> str:
        return f"{self.action} on {self.profile_id}"


class OperationReceipt(models.Model):
    """A people or group operation applied at once (/api/people, /api/groups,
    /api/groups/properties) with a message id: written in the operation's transaction, so that
    an SDK's retry of it (same source, same message id) is answered as a duplicate and not
    applied again. Only the ids and the time: never the payload nor the person (see
    docs/people.md); purged after CDP_OPERATION_RECEIPT_RETENTION_DAYS."""

    source = models.ForeignKey("sources.EventSource", on_delete=models.CASCADE, related_name="+")
    message_id = models.CharField(max_length=200)
    applied_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "message_id"], name="profiles_operation_receipt_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.source_id}:{self.message_id}"
