"""The model side of scores: scikit-learn (the optional `ml` extra) is imported here only, when
a model is trained or used; fitting, the holdout metrics, and the signed serialized model."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

from cdp.errors import DomainError

INSTALL_HINT = (
    "Predictive scores need scikit-learn, an optional extra: install it with "
    "`pip install '.[ml]'` (or `pip install scikit-learn`) and restart the workers"
)
HOLDOUT_SHARE = 0.25
CALIBRATION_BINS = 10
ROC_POINTS = 50
_SIGNING_SALT = "apps.segments.scoring.model"


class ScoringUnavailable(DomainError):
    status_code = 503
    code = "ml_not_installed"


def sklearn_available() -> bool:
    try:
        sklearn_modules()
    except ScoringUnavailable:
        return False
    return True


def sklearn_modules() -> Any:
    try:
        import sklearn  # noqa: F401
        from sklearn import (
            ensemble,
            linear_model,
            metrics,
            model_selection,
            pipeline,
            preprocessing,
        )
    except ImportError:
        raise ScoringUnavailable(INSTALL_HINT) from None
    return {
        "ensemble": ensemble,
        "linear_model": linear_model,
        "metrics": metrics,
        "model_selection": model_selection,
        "pipeline": pipeline,
        "preprocessing": preprocessing,
    }


def numpy() -> Any:
    try:
        import numpy as np
    except ImportError:
        raise ScoringUnavailable(INSTALL_HINT) from None
    return np


def make_model(kind: str, *, seed: int) -> Any:
    sk = sklearn_modules()
    if kind == "gradient_boosting":
        return sk["ensemble"].HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.1, early_stopping=True, random_state=seed
        )
    return sk["pipeline"].make_pipeline(
        sk["preprocessing"].StandardScaler(),
        sk["linear_model"].LogisticRegression(max_iter=1000),
    )


@dataclass
class Split:
    train: Any  # row indexes
    holdout: Any


def split(labels: Any, *, seed: int) -> Split:
    """A stratified split of the profiles: 75% to fit, 25% held out to evaluate."""
    np = numpy()
    indexes = np.arange(len(labels))
    train, holdout = sklearn_modules()["model_selection"].train_test_split(
        indexes, test_size=HOLDOUT_SHARE, stratify=labels, random_state=seed
    )
    return Split(train=np.sort(train), holdout=np.sort(holdout))


def fit(model: Any, features: Any, labels: Any) -> Any:
    model.fit(features, labels)
    return model


def predict(model: Any, features: Any) -> Any:
    """The probability of the positive class, per row."""
    return model.predict_proba(features)[:, 1]


def auc(labels: Any, predicted: Any) -> float:
    return float(sklearn_modules()["metrics"].roc_auc_score(labels, predicted))


def evaluate(labels: Any, predicted: Any) -> dict[str, Any]:
    """Holdout metrics: ROC AUC (0.5 = the base rate's, which ranks no one above anyone),
    the Brier score against the base rate's, a calibration table (mean predicted vs observed
    share, per tenth of the 0..1 range), the ROC curve and the lift of the top tenth."""
    np = numpy()
    metrics = sklearn_modules()["metrics"]
    labels = np.asarray(labels, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    base_rate = float(labels.mean())
    brier = float(metrics.brier_score_loss(labels, predicted))
    brier_base = float(np.mean((labels - base_rate) ** 2))
    calibration = []
    bins = np.minimum((predicted * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    for b in range(CALIBRATION_BINS):
        mask = bins == b
        count = int(mask.sum())
        if count:
            calibration.append(
                {
                    "bin": [b / CALIBRATION_BINS, (b + 1) / CALIBRATION_BINS],
                    "predicted": round(float(predicted[mask].mean()), 4),
                    "observed": round(float(labels[mask].mean()), 4),
                    "count": count,
                }
            )
    fpr, tpr, _ = metrics.roc_curve(labels, predicted)
    step = max(1, len(fpr) // ROC_POINTS)
    roc = [
        [round(float(x), 4), round(float(y), 4)]
        for x, y in zip(fpr[::step], tpr[::step], strict=True)
    ]
    if roc[-1] != [1.0, 1.0]:
        roc.append([1.0, 1.0])
    top = np.argsort(-predicted, kind="stable")[: max(1, len(predicted) // 10)]
    lift = float(labels[top].mean() / base_rate) if base_rate else 0.0
    return {
        "auc": round(auc(labels, predicted), 4),
        "base_rate": round(base_rate, 4),
        "brier": round(brier, 5),
        "brier_base_rate": round(brier_base, 5),
        "calibration": calibration,
        "roc": roc,
        "top_decile_lift": round(lift, 3),
        "holdout_profiles": len(labels),
        "holdout_converters": int(labels.sum()),
    }


def refusal(metrics: dict[str, Any], *, min_auc: float) -> str:
    """Why a model is no better than the base rate, or "" when it is."""
    if metrics["auc"] < min_auc:
        return (
            f"ROC AUC {metrics['auc']:.3f} on the holdout is no better than the base rate "
            f"({metrics['base_rate']:.1%} converters; a guess of the base rate ranks at 0.5, "
            f"this score needs at least {min_auc:.2f}): the features do not tell converters "
            "apart. Add traits, lengthen the history, or choose a more common target"
        )
    if metrics["brier"] >= metrics["brier_base_rate"]:
        return (
            f"Its probabilities (Brier {metrics['brier']:.4f}) are no closer to what happened "
            f"than the base rate for everyone (Brier {metrics['brier_base_rate']:.4f})"
        )
    return ""


def _signature(blob: bytes, secret: str | None = None) -> str:
    return salted_hmac(_SIGNING_SALT, blob, secret=secret, algorithm="sha256").hexdigest()


def dump(model: Any) -> tuple[bytes, str]:
    """The model serialized, and its signature under this server's SECRET_KEY."""
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    return blob, _signature(blob)


def load(blob: bytes | memoryview | None, signature: str) -> Any:
    """The model, if this server signed it (a row written by anyone else is never unpickled)."""
    sklearn_modules()
    if blob is None:
        raise DomainError("This version holds no model (it was not accepted)", code="no_model")
    blob = bytes(blob)
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    if not any(constant_time_compare(_signature(blob, secret), signature) for secret in secrets):
        raise DomainError(
            "The stored model's signature does not match this server's SECRET_KEY (changed "
            "since it was trained?): train the score again",
            code="model_signature",
        )
    return pickle.loads(blob)  # noqa: S301 - signed by this server just above
