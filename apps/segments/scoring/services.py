"""Writes on scores: definitions, training on a time split (with a holdout evaluation, and the
refusal of a model no better than the base rate or than the active one), scoring every profile,
and what the periodic task runs."""

from __future__ import annotations

import logging
import zlib
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from apps.segments.models import Segment, SegmentKind
from apps.segments.scoring import features, ml
from apps.segments.scoring.models import (
    ModelKind,
    ProfileScore,
    ScoreDefinition,
    ScoreModelVersion,
    VersionStatus,
)
from cdp.errors import DomainError
from cdp.tasks import TRANSIENT_DB_ERRORS, enqueue, enqueue_on_commit

logger = logging.getLogger(__name__)

TRAIN_TASK = "apps.segments.scoring.tasks.train_score"
SCORE_TASK = "apps.segments.scoring.tasks.score_profiles"
MIN_PROFILES = 200
MIN_CONVERTERS = 20
# A retrained model replaces the active one unless its holdout AUC is lower by more than this
# (both measured on the same held-out profiles).
WORSE_TOLERANCE = 0.005
# A version still "training" after this long lost its worker: it is marked failed.
TRAINING_TIMEOUT = timedelta(hours=6)
MAX_TRAITS = 20
EDITABLE = (
    "name",
    "description",
    "target_event",
    "horizon_days",
    "model_kind",
    "numeric_traits",
    "categorical_traits",
    "max_events",
    "min_auc",
    "score_every_hours",
    "retrain_every_days",
    "enabled",
)


def _check_traits(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_TRAITS:
        raise DomainError(f"{field} is a list of at most {MAX_TRAITS} trait keys", field=field)
    for key in value:
        if not isinstance(key, str) or not 1 <= len(key) <= 100 or "\x00" in key:
            raise DomainError(
                f"{field}: a trait key is a string of 1 to 100 characters", field=field
            )
    if len(set(value)) != len(value):
        raise DomainError(f"{field} names a trait twice", field=field)
    return list(value)


def _save(definition: ScoreDefinition, *, update_fields: list[str] | None = None) -> None:
    definition.numeric_traits = _check_traits(definition.numeric_traits, "numeric_traits")
    definition.categorical_traits = _check_traits(
        definition.categorical_traits, "categorical_traits"
    )
    both = set(definition.numeric_traits) & set(definition.categorical_traits)
    if both:
        raise DomainError(
            f"trait {sorted(both)[0]!r} is either numeric or categorical, not both",
            field="categorical_traits",
        )
    try:
        definition.full_clean(exclude=["active_version"])
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        code = "unique" if "already exists" in messages[0] else "invalid"
        raise DomainError(messages[0], field=field, code=code) from None
    definition.save(update_fields=update_fields)


def score_definition_create(**fields: Any) -> ScoreDefinition:
    """A new score; it has no model until trained (`score_train_request`)."""
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise DomainError(f"unknown field {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
    definition = ScoreDefinition(**fields)
    with transaction.atomic():
        _save(definition)
    return definition


def score_definition_update(*, definition: ScoreDefinition, **fields: Any) -> ScoreDefinition:
    """Change a score. The name, once profiles carry it, is what filters read: renaming is
    refused while a segment reads it. A change to what is predicted applies from the next
    training (the active model keeps scoring until then)."""
    if "name" in fields and fields["name"] != definition.name:
        _refuse_if_read(definition, "renamed")
    for name, value in fields.items():
        if name not in EDITABLE:
            raise DomainError(f"unknown field {name!r}", field=name)
        setattr(definition, name, value)
    with transaction.atomic():
        # Locked first: a score deleted since it was read is a 404, not a failed save.
        if not ScoreDefinition.objects.select_for_update().filter(pk=definition.pk).exists():
            raise DomainError(
                f"The score {definition.name!r} no longer exists.",
                code="not_found",
                status_code=404,
            )
        _save(definition, update_fields=[*fields, "updated_at"])
    return definition


def _segments_reading(name: str) -> list[Segment]:
    from apps.segments.services.definitions import _parsed

    reading = []
    for segment in Segment.objects.filter(kind=SegmentKind.DYNAMIC).exclude(filter=None):
        try:
            if name in _parsed(segment).references.scores:
                reading.append(segment)
        except DomainError:
            continue
        except Exception:  # a stored filter that no longer parses reads nothing
            logger.exception("Segment %s: its filter does not parse", segment.key)
    return reading


def _refuse_if_read(definition: ScoreDefinition, verb: str) -> None:
    reading = _segments_reading(definition.name)
    if reading:
        raise DomainError(
            f"Score {definition.name!r} can't be {verb}: segment {reading[0].key!r} reads it "
            "(change that segment's filter first)",
            code="in_use",
            status_code=409,
        )


def score_definition_delete(*, definition: ScoreDefinition) -> None:
    """Delete a score, its versions and its values (refused while a segment reads it)."""
    _refuse_if_read(definition, "deleted")
    with transaction.atomic():
        ScoreDefinition.objects.filter(pk=definition.pk).update(active_version=None)
        ProfileScore.objects.filter(definition=definition).delete()
        definition.delete()


# --- training -----------------------------------------------------------------------------------


def _cutoff(definition: ScoreDefinition, now: datetime) -> datetime:
    return now - timedelta(days=definition.horizon_days)


def _check_trainable(definition: ScoreDefinition, *, cutoff: datetime, now: datetime) -> None:
    """Bad input, said before anything is written: no scikit-learn, too few profiles, a
    target nobody performs (or everybody does)."""
    ml.numpy()
    ml.sklearn_modules()
    existing = features.profiles_existing(as_of=cutoff)
    when = f"{cutoff:%Y-%m-%d %H:%M} UTC, the horizon of {definition.horizon_days} days back"
    if existing < MIN_PROFILES:
        raise DomainError(
            f"Too few profiles to learn from: {existing} were seen before the cutoff ({when}); "
            f"a score needs at least {MIN_PROFILES} (part of them is held out to test the "
            "model). Wait for more data or shorten the horizon",
            code="too_few_profiles",
            field="horizon_days",
        )
    if not features.target_happened(event_name=definition.target_event, start=cutoff, end=now):
        ever = features.target_happened(
            event_name=definition.target_event,
            start=datetime.min.replace(tzinfo=now.tzinfo),
            end=now,
        )
        detail = (
            "it happened only before the cutoff"
            if ever
            else "no event of that name was ever received: check the name"
        )
        raise DomainError(
            f"The target event {definition.target_event!r} never happens in the "
            f"{definition.horizon_days} days after the cutoff ({when}), so there is no "
            f"converter to learn from ({detail})",
            code="target_never_happens",
            field="target_event",
        )
    converted = len(_converters(definition, cutoff=cutoff, now=now))
    if converted < MIN_CONVERTERS or existing - converted < MIN_CONVERTERS:
        raise DomainError(
            f"{converted} of the {existing} profiles performed {definition.target_event!r} in "
            f"the {definition.horizon_days} days after the cutoff: a score needs at least "
            f"{MIN_CONVERTERS} who did and {MIN_CONVERTERS} who did not",
            code="too_few_converters",
            field="target_event",
        )


def _converters(definition: ScoreDefinition, *, cutoff: datetime, now: datetime) -> set[Any]:
    """The profiles seen before the cutoff that performed the target in the horizon after it."""
    return features.converters(
        event_name=definition.target_event,
        start=cutoff,
        end=min(now, cutoff + timedelta(days=definition.horizon_days)),
    )


def score_train_request(
    *, definition: ScoreDefinition, now: datetime | None = None
) -> ScoreModelVersion:
    """Check the input, record a version in training and queue the training (after the
    commit). Bad input raises a DomainError and writes nothing."""
    now = now or timezone.now()
    cutoff = _cutoff(definition, now)
    with transaction.atomic():
        definition = ScoreDefinition.objects.select_for_update().get(pk=definition.pk)
        running = definition.versions.filter(
            status=VersionStatus.TRAINING, created_at__gt=now - TRAINING_TIMEOUT
        ).first()
        if running is not None:
            raise DomainError(
                f"Version {running.number} of {definition.name!r} is training already",
                code="training",
                status_code=409,
            )
        _check_trainable(definition, cutoff=cutoff, now=now)
        last = definition.versions.order_by("-number").values_list("number", flat=True).first()
        version = ScoreModelVersion.objects.create(
            definition=definition,
            number=(last or 0) + 1,
            model_kind=definition.model_kind,
            cutoff=cutoff,
        )
        enqueue_on_commit(
            TRAIN_TASK, [version.pk], description=f"training of {version}", eager_reraise=True
        )
    return version


def _matrix(
    spec: features.FeatureSpec, *, as_of: datetime, seen_before: bool
) -> tuple[list[Any], Any]:
    """Profile ids and their feature matrix (float64), built in chunks."""
    np = ml.numpy()
    ids: list[Any] = []
    blocks: list[Any] = []
    rows: list[list[float]] = []
    for profile_id, values in features.feature_rows(spec, as_of=as_of, seen_before=seen_before):
        ids.append(profile_id)
        rows.append(values)
        if len(rows) >= features.FETCH_CHUNK:
            blocks.append(np.asarray(rows, dtype=float))
            rows = []
    if rows or not blocks:
        blocks.append(np.asarray(rows, dtype=float).reshape(len(rows), len(spec.columns())))
    return ids, np.vstack(blocks)


def _finish(version: ScoreModelVersion, status: str, reason: str = "", **extra: Any) -> None:
    version.status = status
    version.reason = reason
    version.finished_at = timezone.now()
    for name, value in extra.items():
        setattr(version, name, value)
    version.save(update_fields=["status", "reason", "finished_at", "metrics", *extra])


def score_train(*, version: ScoreModelVersion) -> ScoreModelVersion:
    """Train a version (the task): features as of its cutoff, the label from the horizon after
    it, 75% of the profiles to fit and 25% held out. A model no better than the base rate is
    refused, one worse than the active model (on the same held-out profiles) is kept aside;
    otherwise it becomes active and scores every profile. Failures are recorded on the
    version; the active model and the stored scores are untouched by any of them."""
    definition = version.definition
    now = version.cutoff + timedelta(days=definition.horizon_days)
    try:
        result = _train(version, definition, now)
    except DomainError as exc:
        _finish(version, VersionStatus.FAILED, exc.message)
        return version
    except TRANSIENT_DB_ERRORS:
        raise  # the task retries; the version stays "training" until then
    except Exception as exc:
        # A bug or a library error: recorded on the version for the admin, then raised.
        _finish(version, VersionStatus.FAILED, f"The training failed: {exc!r}")
        raise
    if version.status == VersionStatus.ACTIVE:
        score_apply(definition=ScoreDefinition.objects.get(pk=definition.pk))
    return result


def _train(
    version: ScoreModelVersion, definition: ScoreDefinition, now: datetime
) -> ScoreModelVersion:
    np = ml.numpy()
    cutoff = version.cutoff
    _check_trainable(definition, cutoff=cutoff, now=now)
    spec = features.FeatureSpec(
        events=features.frequent_events(as_of=cutoff, limit=definition.max_events),
        numeric_traits=list(definition.numeric_traits),
        categorical_traits=features.categorical_values(definition.categorical_traits, as_of=cutoff),
    )
    ids, matrix = _matrix(spec, as_of=cutoff, seen_before=True)
    positive = _converters(definition, cutoff=cutoff, now=now)
    labels = np.asarray([profile_id in positive for profile_id in ids], dtype=int)
    # One seed per score, from its name (not its row id, which differs between databases):
    # retrains at the same cutoff hold out the same profiles, so the active model is never
    # compared on profiles it was fitted on, and a training is reproducible anywhere.
    seed = zlib.crc32(definition.name.encode())
    parts = ml.split(labels, seed=seed)
    model = ml.make_model(version.model_kind, seed=seed)
    ml.fit(model, matrix[parts.train], labels[parts.train])
    metrics = ml.evaluate(labels[parts.holdout], ml.predict(model, matrix[parts.holdout]))
    metrics.update(
        training_profiles=len(parts.train),
        training_converters=int(labels[parts.train].sum()),
        features=spec.columns(),
    )
    version.feature_spec = spec.as_dict()
    version.metrics = metrics
    reason = ml.refusal(metrics, min_auc=definition.min_auc)
    if reason:
        _finish(version, VersionStatus.REFUSED, reason, feature_spec=version.feature_spec)
        return version
    active = definition.active_version
    if active is not None and active.model is not None:
        holdout_ids = [ids[i] for i in parts.holdout]
        active_auc = _auc_of(active, holdout_ids, labels[parts.holdout], cutoff)
        if active_auc is not None:
            metrics["active_auc_on_holdout"] = round(active_auc, 4)
            if metrics["auc"] < active_auc - WORSE_TOLERANCE:
                _finish(
                    version,
                    VersionStatus.KEPT_PREVIOUS,
                    f"Holdout ROC AUC {metrics['auc']:.3f} is below the active model's "
                    f"{active_auc:.3f} (v{active.number}, on the same held-out profiles): "
                    f"v{active.number} stays active",
                    feature_spec=version.feature_spec,
                )
                return version
    blob, signature = ml.dump(model)
    with transaction.atomic():
        locked = ScoreDefinition.objects.select_for_update().get(pk=definition.pk)
        if locked.active_version_id is not None:
            ScoreModelVersion.objects.filter(pk=locked.active_version_id).update(
                status=VersionStatus.RETIRED
            )
        _finish(
            version,
            VersionStatus.ACTIVE,
            feature_spec=version.feature_spec,
            model=blob,
            model_signature=signature,
        )
        locked.active_version = version
        locked.save(update_fields=["active_version", "updated_at"])
    return version


def _auc_of(
    active: ScoreModelVersion, holdout_ids: list[Any], labels: Any, cutoff: datetime
) -> float | None:
    """The active model's AUC on the new version's held-out profiles (its own features)."""
    try:
        model = ml.load(active.model, active.model_signature)
    except DomainError:
        logger.warning("%s can't be loaded: the new version is compared with nothing", active)
        return None
    spec = features.FeatureSpec.from_dict(active.feature_spec)
    ids, matrix = _matrix(spec, as_of=cutoff, seen_before=True)
    row_of = {profile_id: row for row, profile_id in enumerate(ids)}
    rows = [row_of[p] for p in holdout_ids if p in row_of]
    if len(rows) != len(holdout_ids):
        return None
    return ml.auc(labels, ml.predict(model, matrix[rows]))


# --- scoring ------------------------------------------------------------------------------------

_SCORE_TABLE = ProfileScore._meta.db_table


def score_apply(*, definition: ScoreDefinition, now: datetime | None = None) -> int:
    """Score every profile with the active model (features as of now) and replace the
    stored values in one transaction: readers see the old scores or the new ones, never a
    mix. Then the dynamic segments that read this score are recomputed. Returns how many
    profiles were scored."""
    now = now or timezone.now()
    version = definition.active_version
    if version is None or version.model is None:
        raise DomainError(
            f"Score {definition.name!r} has no active model yet: train it first",
            code="no_model",
            status_code=409,
        )
    model = ml.load(version.model, version.model_signature)
    spec = features.FeatureSpec.from_dict(version.feature_spec)
    ids, matrix = _matrix(spec, as_of=now, seen_before=False)
    values = ml.predict(model, matrix) if ids else []
    rows = [
        (definition.pk, profile_id, round(float(value), 6))
        for profile_id, value in zip(ids, values, strict=True)
    ]
    with transaction.atomic():
        ProfileScore.objects.filter(definition=definition).delete()
        _write(rows)
        ScoreDefinition.objects.filter(pk=definition.pk).update(last_scored_at=now)
        ScoreModelVersion.objects.filter(pk=version.pk).update(
            scored_at=now, scored_profiles=len(rows)
        )
    definition.last_scored_at = now
    _recompute_readers(definition.name)
    return len(rows)


def _write(rows: list[tuple[int, Any, float]]) -> None:
    if connection.vendor == "postgresql":
        raw = connection.connection.cursor()
        copy_sql = f"COPY {_SCORE_TABLE} (definition_id, profile_id, value) FROM STDIN"
        with raw.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
        return
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {_SCORE_TABLE} (definition_id, profile_id, value) "  # noqa: S608
            "VALUES (%s, %s, %s)",
            rows,
        )


def _recompute_readers(name: str) -> None:
    from apps.segments.services import segments_recompute_all

    keys = [segment.key for segment in _segments_reading(name)]
    if keys:
        segments_recompute_all(keys=keys)


# --- the schedule -------------------------------------------------------------------------------


def scores_run_due(*, now: datetime | None = None) -> dict[str, list[str]]:
    """What the periodic task runs: fail trainings that lost their worker, queue a training
    for scores due one (never trained, or older than retrain_every_days), and a scoring for
    scores whose values are older than score_every_hours."""
    now = now or timezone.now()
    ScoreModelVersion.objects.filter(
        status=VersionStatus.TRAINING, created_at__lte=now - TRAINING_TIMEOUT
    ).update(
        status=VersionStatus.FAILED,
        reason="The training did not finish (its worker stopped?): train again",
        finished_at=now,
    )
    done: dict[str, list[str]] = {"trained": [], "scored": [], "skipped": []}
    for definition in ScoreDefinition.objects.filter(enabled=True).select_related("active_version"):
        last = definition.versions.order_by("-number").first()
        train_due = last is None or (
            definition.retrain_every_days > 0
            and last.created_at <= now - timedelta(days=definition.retrain_every_days)
        )
        if train_due and (last is None or last.status != VersionStatus.TRAINING):
            try:
                score_train_request(definition=definition, now=now)
                done["trained"].append(definition.name)
                continue
            except DomainError as exc:
                logger.warning("Score %s can't be trained: %s", definition.name, exc.message)
                done["skipped"].append(definition.name)
        scoring_due = definition.last_scored_at is None or definition.last_scored_at <= now - (
            timedelta(hours=definition.score_every_hours)
        )
        if definition.active_version is not None and scoring_due:
            enqueue(SCORE_TASK, [definition.pk], description=f"scoring of {definition.name}")
            done["scored"].append(definition.name)
    return done


__all__ = [
    "MIN_CONVERTERS",
    "MIN_PROFILES",
    "ModelKind",
    "score_apply",
    "score_definition_create",
    "score_definition_delete",
    "score_definition_update",
    "score_train",
    "score_train_request",
    "scores_run_due",
]
