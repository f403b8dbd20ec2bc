"""Score definitions, their trained model versions and the scores they wrote per profile."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from apps.profiles.models import Profile

SCORE_NAME_PATTERN = r"[a-z][a-z0-9_]{0,62}"
score_name_validator = RegexValidator(
    rf"^{SCORE_NAME_PATTERN}\Z",
    "A score name starts with a lowercase letter, then lowercase letters, digits and _ "
    "(at most 63), e.g. purchase_14d",
)


class ModelKind(models.TextChoices):
    LOGISTIC_REGRESSION = "logistic_regression", "Logistic regression"
    GRADIENT_BOOSTING = "gradient_boosting", "Gradient boosting"


class ScoreDefinition(models.Model):
    """What to predict: "performs `target_event` within `horizon_days` days", from the
    features the definition selects."""

    name = models.CharField(max_length=63, unique=True, validators=[score_name_validator])
    description = models.TextField(blank=True)
    target_event = models.CharField(max_length=255)
    horizon_days = models.PositiveSmallIntegerField(
        default=14, validators=[MinValueValidator(1), MaxValueValidator(365)]
    )
    model_kind = models.CharField(
        max_length=30, choices=ModelKind, default=ModelKind.LOGISTIC_REGRESSION
    )
    # Trait keys (top-level) read as numbers, and as categories (one column per frequent value).
    numeric_traits = models.JSONField(default=list, blank=True)
    categorical_traits = models.JSONField(default=list, blank=True)
    # How many of the most frequent events get their own count columns.
    max_events = models.PositiveSmallIntegerField(
        default=20, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    # A model whose holdout ROC AUC is below this is refused (0.5 is the base rate's).
    min_auc = models.FloatField(
        default=0.6, validators=[MinValueValidator(0.5), MaxValueValidator(0.99)]
    )
    score_every_hours = models.PositiveSmallIntegerField(
        default=24, validators=[MinValueValidator(1), MaxValueValidator(24 * 30)]
    )
    # 0: only when asked ("train now").
    retrain_every_days = models.PositiveSmallIntegerField(
        default=7, validators=[MaxValueValidator(365)]
    )
    enabled = models.BooleanField(default=True)
    active_version = models.ForeignKey(
        "segments.ScoreModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    last_scored_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("train_scoredefinition", "Can train a score's model")]

    def __str__(self) -> str:
        return self.name


class VersionStatus(models.TextChoices):
    TRAINING = "training", "Training"
    ACTIVE = "active", "Active (scores come from it)"
    RETIRED = "retired", "Retired (a later model replaced it)"
    REFUSED = "refused", "Refused (no better than the base rate)"
    KEPT_PREVIOUS = "kept_previous", "Not used (worse than the active model)"
    FAILED = "failed", "Failed"


class ScoreModelVersion(models.Model):
    """One training run: its time split, features, holdout metrics and (when accepted) the
    fitted model, signed so that only this server's models are ever loaded."""

    definition = models.ForeignKey(
        ScoreDefinition, on_delete=models.CASCADE, related_name="versions"
    )
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=VersionStatus, default=VersionStatus.TRAINING)
    # Why it was refused, kept aside or failed.
    reason = models.TextField(blank=True)
    model_kind = models.CharField(max_length=30, choices=ModelKind)
    # Features as of `cutoff`; the label is the target event in the horizon after it.
    cutoff = models.DateTimeField()
    feature_spec = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict)
    model = models.BinaryField(null=True, editable=False)
    model_signature = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)
    scored_profiles = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["definition", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["definition", "number"], name="segments_scoreversion_number_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.definition.name} v{self.number}"

    @property
    def auc(self) -> float | None:
        return self.metrics.get("auc")


class ProfileScore(models.Model):
    """The latest score of a profile for a definition: one narrow row per (score, profile),
    keyed by both (no surrogate id), rewritten set-wise by each scoring run."""

    pk = models.CompositePrimaryKey("definition_id", "profile_id")
    definition = models.ForeignKey(ScoreDefinition, on_delete=models.CASCADE, related_name="+")
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="+")
    value = models.FloatField()

    class Meta:
        indexes = [
            # `scores.x >= 0.7`: a range over one score's values.
            models.Index(fields=["definition", "value"], name="segments_score_value_idx"),
            # A profile's scores (the in-memory evaluator, the profile page).
            models.Index(fields=["profile"], name="segments_score_profile_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.definition_id}:{self.profile_id}={self.value}"
