"""Saved insights (a named query of one kind) and dashboards (a grid of saved insights)."""

import secrets

from django.conf import settings
from django.db import models


def new_share_key() -> str:
    return secrets.token_urlsafe(12)


class InsightKind(models.TextChoices):
    TRENDS = "trends", "Trends"
    FUNNEL = "funnel", "Funnel"
    RETENTION = "retention", "Retention"
    PATHS = "paths", "Paths"


class SavedInsight(models.Model):
    """A query a marketer named: reopening it (by id or share key) restores it exactly."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=20, choices=InsightKind)
    query = models.JSONField(default=dict)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="saved_insights",
    )
    share_key = models.CharField(max_length=32, unique=True, default=new_share_key, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return self.name


class Dashboard(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="dashboards",
    )
    share_key = models.CharField(max_length=32, unique=True, default=new_share_key, editable=False)
    insights = models.ManyToManyField(SavedInsight, through="DashboardItem", related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class DashboardItem(models.Model):
    """One tile of a dashboard's grid: a saved insight, its place and its width in columns."""

    class Width(models.IntegerChoices):
        HALF = 1, "Half width"
        FULL = 2, "Full width"

    dashboard = models.ForeignKey(Dashboard, on_delete=models.CASCADE, related_name="items")
    insight = models.ForeignKey(SavedInsight, on_delete=models.CASCADE, related_name="tiles")
    position = models.PositiveIntegerField(default=0)
    width = models.PositiveSmallIntegerField(choices=Width, default=Width.HALF)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dashboard", "insight"], name="insights_dashboard_item_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.insight_id} on {self.dashboard_id}"
