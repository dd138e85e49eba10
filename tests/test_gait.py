"""The embedded synthetic gait dataset: shape, balance, determinism, and a difficulty check."""

from __future__ import annotations

import timeit

import numpy as np
from scipy.signal import find_peaks
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tools.datasets.gait import make_gait_dataset


def test_shape_dtype_and_labels() -> None:
    X, y = make_gait_dataset()
    assert X.shape == (480, 64, 3) and X.dtype == np.float32
    assert y.shape == (480,) and set(y.tolist()) == {"normal", "asymmetric"}
    assert abs((y == "asymmetric").mean() - 0.2) <= 0.05
    assert np.isfinite(X).all()


def test_deterministic_per_seed_and_fast() -> None:
    assert min(timeit.repeat(make_gait_dataset, number=1, repeat=3)) < 0.2
    X, y = make_gait_dataset()
    X_again, y_again = make_gait_dataset()
    assert X.tobytes() == X_again.tobytes() and y.tobytes() == y_again.tobytes()
    assert make_gait_dataset(seed=8)[0].tobytes() != X.tobytes()
    assert make_gait_dataset(n_sequences=50, timesteps=32)[0].shape == (50, 32, 3)


def alternate_step_features(X: np.ndarray) -> np.ndarray:
    """How much more consecutive heel-strike peaks differ than every-other-step peaks."""
    features = []
    for vertical in X[:, :, 0].astype(np.float64):
        steps = np.arange(len(vertical))
        vertical = vertical - np.polyval(np.polyfit(steps, vertical, 1), steps)  # drift
        peaks, _ = find_peaks(vertical, distance=8, prominence=0.25 * np.ptp(vertical))
        heights = vertical[peaks]
        if len(heights) < 3:
            features.append(0.0)
            continue
        next_step = np.abs(np.diff(heights)).mean()
        same_foot = np.abs(heights[2:] - heights[:-2]).mean()
        features.append((next_step - same_foot) / np.ptp(vertical))
    return np.array(features)[:, np.newaxis]


def balanced_accuracy(features: np.ndarray, y: np.ndarray) -> float:
    model = make_pipeline(
        StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000)
    )
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scores = cross_val_score(model, features, y, cv=folds, scoring="balanced_accuracy")
    return float(scores.mean())


def test_linear_model_on_raw_samples_cannot_solve_it() -> None:
    """Learnable (comparing alternate steps works) but not by a linear model on raw samples."""
    X, y = make_gait_dataset()
    raw = balanced_accuracy(X.reshape(len(X), -1), y)
    compared = balanced_accuracy(alternate_step_features(X), y)
    assert raw < 0.7
    assert compared > 0.75
    assert compared > raw + 0.15
