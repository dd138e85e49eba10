"""Classification metrics from predicted probabilities (NumPy + scikit-learn, no TensorFlow).

The same functions score every epoch of a trial (inside a worker) and the
final model, so tuning and evaluation measure one thing the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def sklearn_metrics() -> Any:
    """scikit-learn's metrics, imported on first use: it costs ~0.8 s of server start-up."""
    from sklearn import metrics

    return metrics


def to_class_probs(probs: np.ndarray) -> np.ndarray:
    """(n,) or (n, 1) sigmoid outputs -> (n, 2); (n, C) softmax outputs unchanged."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1 or probs.shape[1] == 1:
        positive = probs.reshape(-1)
        return np.stack([1.0 - positive, positive], axis=1)
    return probs


def predict_labels(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Argmax for multiclass; `positive prob >= threshold` for binary."""
    class_probs = to_class_probs(probs)
    if class_probs.shape[1] == 2:
        return (class_probs[:, 1] >= threshold).astype(np.int64)
    return np.asarray(class_probs.argmax(axis=1), dtype=np.int64)


def score_metrics(
    y_true: np.ndarray, probs: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """accuracy, balanced_accuracy, auc, pr_auc and f1 (binary: positive class; else macro)."""
    class_probs = to_class_probs(probs)
    n_classes = class_probs.shape[1]
    y_pred = predict_labels(class_probs, threshold)
    binary = n_classes == 2
    return {
        "accuracy": float(np.mean(y_pred == y_true)),
        "balanced_accuracy": float(sklearn_metrics().balanced_accuracy_score(y_true, y_pred)),
        "auc": _safe_auc(y_true, class_probs, binary),
        "pr_auc": _pr_auc(y_true, class_probs, binary),
        "f1": float(
            sklearn_metrics().f1_score(
                y_true, y_pred, average="binary" if binary else "macro", zero_division=0
            )
        ),
    }


def _safe_auc(y_true: np.ndarray, class_probs: np.ndarray, binary: bool) -> float:
    if len(np.unique(y_true)) < 2:
        return float("nan")
    if binary:
        return float(sklearn_metrics().roc_auc_score(y_true, class_probs[:, 1]))
    labels = np.arange(class_probs.shape[1])
    if len(np.unique(y_true)) < len(labels):
        return float("nan")
    normalized = class_probs / np.clip(class_probs.sum(axis=1, keepdims=True), 1e-12, None)
    return float(
        sklearn_metrics().roc_auc_score(y_true, normalized, multi_class="ovr", labels=labels)
    )


def _pr_auc(y_true: np.ndarray, class_probs: np.ndarray, binary: bool) -> float:
    if binary:
        return float(sklearn_metrics().average_precision_score(y_true, class_probs[:, 1]))
    one_hot = np.eye(class_probs.shape[1])[y_true]
    return float(sklearn_metrics().average_precision_score(one_hot, class_probs, average="macro"))
