"""Celery tasks of scores (queue `scores`: training is CPU-heavy, kept off the segment queue)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.segments.scoring import services
from apps.segments.scoring.models import ScoreDefinition, ScoreModelVersion, VersionStatus
from cdp.tasks import transient_retry


@shared_task(**transient_retry(3))
def train_score(version_id: int) -> str | None:
    version = (
        ScoreModelVersion.objects.select_related("definition", "definition__active_version")
        .filter(pk=version_id, status=VersionStatus.TRAINING)
        .first()
    )
    if version is None:
        return None  # deleted, or finished by an earlier delivery of this message
    return services.score_train(version=version).status


@shared_task(**transient_retry(3))
def score_profiles(definition_id: int) -> int | None:
    definition = (
        ScoreDefinition.objects.select_related("active_version").filter(pk=definition_id).first()
    )
    if definition is None or definition.active_version is None:
        return None
    return services.score_apply(definition=definition)


@shared_task(**transient_retry(3))
def run_due_scores() -> dict[str, Any]:
    """Periodic (beat): trainings and scorings that are due."""
    return services.scores_run_due()
