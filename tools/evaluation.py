"""Classification reports from predicted probabilities (server side, no TensorFlow).

Binary tasks report precision/recall/F1 of the positive class (index 1: the
minority class of the dataset); multiclass tasks report macro averages and
every class. The F1-optimal decision threshold is chosen on the val split
only and then applied, unchanged, to the test split.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from tools.metrics import predict_labels, score_metrics, sklearn_metrics, to_class_probs


class ClassMetrics(BaseModel):
    precision: float
    recall: float
    f1: float
    support: int


class SplitMetrics(BaseModel):
    n: int
    accuracy: float
    balanced_accuracy: float
    precision: float = Field(description="Binary: of the positive class; multiclass: macro.")
    recall: float
    f1: float
    roc_auc: float | None
    pr_auc: float | None
    average: str = Field(description="'binary' (positive class) or 'macro'.")
    positive_class: str | None
    threshold: float | None = Field(description="Binary decision threshold used.")
    labels: list[str]
    confusion_matrix: list[list[int]] = Field(description="Rows: true class; columns: predicted.")
    per_class: dict[str, ClassMetrics]


def evaluate_probs(
    y_true: np.ndarray, probs: np.ndarray, labels: list[str], threshold: float = 0.5
) -> SplitMetrics:
    class_probs = to_class_probs(probs)
    binary = class_probs.shape[1] == 2
    y_pred = predict_labels(class_probs, threshold)
    indices = list(range(len(labels)))
    scores = score_metrics(y_true, class_probs, threshold)
    prec, rec, f1, support = sklearn_metrics().precision_recall_fscore_support(
        y_true, y_pred, labels=indices, zero_division=0
    )
    # Binary: the positive class; multiclass: the unweighted mean over classes.
    headline = (prec[1], rec[1], f1[1]) if binary else (prec.mean(), rec.mean(), f1.mean())
    return SplitMetrics(
        n=len(y_true),
        accuracy=scores["accuracy"],
        balanced_accuracy=scores["balanced_accuracy"],
        precision=float(headline[0]),
        recall=float(headline[1]),
        f1=float(headline[2]),
        roc_auc=_finite(scores["auc"]),
        pr_auc=_finite(scores["pr_auc"]),
        average="binary" if binary else "macro",
        positive_class=labels[1] if binary else None,
        threshold=threshold if binary else None,
        labels=labels,
        confusion_matrix=sklearn_metrics()
        .confusion_matrix(y_true, y_pred, labels=indices)
        .tolist(),
        per_class={
            label: ClassMetrics(
                precision=float(prec[i]),
                recall=float(rec[i]),
                f1=float(f1[i]),
                support=int(support[i]),
            )
            for i, label in enumerate(labels)
        },
    )


def best_f1_threshold(y_true: np.ndarray, probs: np.ndarray) -> float:
    """The positive-class threshold that maximises F1 (ties: the one nearest 0.5)."""
    positive = to_class_probs(probs)[:, 1]
    precision, recall, thresholds = sklearn_metrics().precision_recall_curve(y_true, positive)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))[:-1]
    if len(thresholds) == 0:
        return 0.5
    best = f1.max()
    tied = thresholds[np.isclose(f1, best, rtol=0, atol=1e-12)]
    return float(tied[np.argmin(np.abs(tied - 0.5))])


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None
