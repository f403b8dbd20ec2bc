"""Reads on scores: lookups, the history of model versions, a profile's scores."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apps.profiles.models import Profile
from apps.segments.scoring.models import ProfileScore, ScoreDefinition, ScoreModelVersion
from cdp.errors import DomainError


def score_list() -> QuerySet[ScoreDefinition]:
    return ScoreDefinition.objects.select_related("active_version").defer("active_version__model")


def score_get(name: str) -> ScoreDefinition:
    definition = score_list().filter(name=name).first()
    if definition is None:
        raise DomainError(f"No score named {name!r}", code="not_found", status_code=404)
    return definition


def score_version_list(definition: ScoreDefinition) -> QuerySet[ScoreModelVersion]:
    """Newest first, without the serialized models."""
    return definition.versions.defer("model").order_by("-number")


def profile_scores(profile: Profile) -> list[dict[str, Any]]:
    """The profile's current scores, by name (value from 0 to 1, and as a whole percent)."""
    rows = (
        ProfileScore.objects.filter(profile=profile)
        .order_by("definition__name")
        .values_list("definition__name", "value")
    )
    return [
        {"name": name, "value": value, "percent": round(max(0.0, min(1.0, value)) * 100)}
        for name, value in rows
    ]
