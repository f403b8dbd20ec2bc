"""Segments (cohorts): a filter (dynamic) or an explicit member list (static), and the
membership history: one row per stay of a profile in a segment, open while it lasts."""

from django.db import models
from django.db.models import Q

from apps.profiles.models import Profile, ProfileMerge


class SegmentKind(models.TextChoices):
    DYNAMIC = "dynamic", "Dynamic (a filter)"
    STATIC = "static", "Static (a member list)"


class Segment(models.Model):
    key = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=SegmentKind, default=SegmentKind.DYNAMIC)
    # The filter-language tree (dynamic segments only).
    filter = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_computed_at = models.DateTimeField(null=True, blank=True)
    # Current members, kept up to date by the services (exact after each recompute).
    member_count = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.name or self.key


class SegmentMembership(models.Model):
    """A profile's stay in a segment: `exited_at` is null while it lasts. Rows are kept after
    the exit, so the history of who was in a segment, and when, stays."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    profile = models.ForeignKey(
        Profile, on_delete=models.CASCADE, related_name="segment_memberships"
    )
    entered_at = models.DateTimeField()
    exited_at = models.DateTimeField(null=True, blank=True)
    # The merge that carried this stay to the surviving profile (on the survivor's row), or
    # that ended it (on the merged profile's row): an unmerge undoes both.
    merge = models.ForeignKey(
        ProfileMerge, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["segment", "profile"],
                condition=Q(exited_at__isnull=True),
                name="segments_membership_current_uniq",
            )
        ]
        indexes = [
            # Current members of a segment, newest first (the members list and its cursor).
            models.Index(
                fields=["segment", "-id"],
                condition=Q(exited_at__isnull=True),
                name="segments_member_current_idx",
            ),
            # The segments a profile is in now.
            models.Index(
                fields=["profile"],
                condition=Q(exited_at__isnull=True),
                name="segments_member_profile_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.profile_id} in {self.segment_id}"


# Predictive scores live in their own module (apps/segments/scoring/); Django finds app models here.
from apps.segments.scoring.models import (  # noqa: E402
    ModelKind,
    ProfileScore,
    ScoreDefinition,
    ScoreModelVersion,
    VersionStatus,
)

__all__ = [
    "ModelKind",
    "ProfileScore",
    "ScoreDefinition",
    "ScoreModelVersion",
    "Segment",
    "SegmentKind",
    "SegmentMembership",
    "VersionStatus",
]
