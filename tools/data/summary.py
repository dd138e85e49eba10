"""A summary of a dataset, with the warnings an assistant should act on before tuning."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from pydantic import Field

from tools.data.loading import RawDataset
from tools.data.preparation import DEFAULT_SMOTE_K
from tools.schemas import SplitSpec, Strict

_IMBALANCED_RATIO = 1.5
_FEW_SEQUENCES = 100


class DatasetSummary(Strict):
    """What a dataset holds, and what to watch out for before tuning on it."""

    source: str = Field(description="The dataset as given: a path or builtin:<name>.")
    path: str | None = Field(description="The resolved file (None for builtin datasets).")
    sha256: str = Field(description="Digest recorded in the study to detect later changes.")
    n_sequences: int
    timesteps: int
    features: int
    classes: dict[str, int] = Field(description="Label -> number of sequences (all splits).")
    presplit: bool = Field(description="True when the file carries its own train/val/test.")
    imbalance_ratio: float = Field(description="Majority class count / minority class count.")
    warnings: list[str] = Field(description="Problems to address before or while tuning.")


def describe_dataset(raw: RawDataset) -> DatasetSummary:
    parts = raw.parts()
    labels, counts = np.unique(np.concatenate([y for _, y in parts]), return_counts=True)
    classes = {str(label): int(count) for label, count in zip(labels, counts, strict=True)}
    n_sequences = int(counts.sum())
    _, timesteps, features = parts[0][0].shape
    ratio = float(counts.max() / counts.min())
    warnings = [
        *_imbalance_warnings(ratio),
        *_small_class_warnings(raw, classes),
        *_missing_class_warnings(raw, classes),
        *_constant_feature_warnings(X for X, _ in parts),
    ]
    if n_sequences < _FEW_SEQUENCES:
        warnings.append(
            f"only {n_sequences} sequences: validation and test metrics rest on few sequences "
            "per class and will be noisy"
        )
    return DatasetSummary(
        source=raw.source,
        path=str(raw.path) if raw.path else None,
        sha256=raw.sha256,
        n_sequences=n_sequences,
        timesteps=timesteps,
        features=features,
        classes=classes,
        presplit=raw.presplit is not None,
        imbalance_ratio=round(ratio, 4),
        warnings=warnings,
    )


def _imbalance_warnings(ratio: float) -> list[str]:
    if ratio < _IMBALANCED_RATIO:
        return []
    return [
        f"classes are imbalanced ({ratio:.1f}:1): use imbalance='smote' or 'class_weight' and "
        "a metric such as val_balanced_accuracy, val_f1 or val_pr_auc rather than val_accuracy"
    ]


def _small_class_warnings(raw: RawDataset, classes: dict[str, int]) -> list[str]:
    """Classes too small for SMOTE's default k_neighbors, or for a three-way split."""
    train_fraction = SplitSpec().train
    if raw.presplit:
        _, y_train = raw.presplit["train"]
        in_train = {label: int((y_train == label).sum()) for label in classes}
    else:
        in_train = {label: int(count * train_fraction) for label, count in classes.items()}
    warnings = []
    for label, count in classes.items():
        if not raw.presplit and count < 3:
            warnings.append(
                f"class {label!r} has only {count} sequences: too few to appear in each of "
                "train, val and test"
            )
        elif in_train[label] <= DEFAULT_SMOTE_K:
            fix = f"smote_k_neighbors={in_train[label] - 1} or " if in_train[label] > 1 else ""
            warnings.append(
                f"class {label!r} has only {count} sequences (about {in_train[label]} in the "
                f"training split): SMOTE needs more than k_neighbors={DEFAULT_SMOTE_K} in the "
                f"training split; use {fix}imbalance='class_weight'"
            )
    return warnings


def _missing_class_warnings(raw: RawDataset, classes: dict[str, int]) -> list[str]:
    if not raw.presplit:
        return []
    warnings = []
    for name, (_, y) in raw.presplit.items():
        missing = sorted(set(classes) - {str(label) for label in np.unique(y)})
        if missing:
            warnings.append(
                f"the {name} split has no sequences of class {', '.join(map(repr, missing))}; "
                "preparing will fail: save X and y only and let seqtune split them"
            )
    return warnings


def _constant_feature_warnings(arrays: Iterable[np.ndarray]) -> list[str]:
    lows, highs = zip(*((X.min(axis=(0, 1)), X.max(axis=(0, 1))) for X in arrays), strict=True)
    constant = np.flatnonzero(np.min(lows, axis=0) == np.max(highs, axis=0))
    if not len(constant):
        return []
    return [
        f"feature {', '.join(map(str, constant))} is constant everywhere and carries no "
        "information; consider dropping it"
    ]
