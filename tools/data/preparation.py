"""Split, scale and rebalance a dataset without letting val/test information reach training.

Order matters: split first (stratified, seeded), fit the scaler on the raw
training split, scale every split with it, then oversample the scaled
training split only. Validation and test keep exactly their original rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import numpy as np

from tools.data.loading import RawDataset
from tools.errors import InvalidConfig, InvalidDataset
from tools.schemas import Imbalance, SplitSpec

DEFAULT_SMOTE_K = 5
IMBALANCE_STRATEGIES: tuple[str, ...] = get_args(Imbalance)
# Features this flat are treated as constant: dividing by their std would amplify float noise.
_MIN_STD = 1e-8

Splits = dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class PreparedData:
    """Model-ready splits. X float32 standardized, y int64 indices into label_names."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    label_names: list[str]
    scaler_mean: np.ndarray
    scaler_std: np.ndarray
    class_weight: dict[int, float] | None
    counts: dict[str, dict[str, int]]
    imbalance: str


def prepare_dataset(
    raw: RawDataset,
    *,
    split: SplitSpec,
    imbalance: Imbalance,
    seed: int,
    smote_k_neighbors: int = DEFAULT_SMOTE_K,
    smote_ratio: float | None = None,
) -> PreparedData:
    """Split (unless pre-split), standardize with train statistics, rebalance train.

    `smote_ratio` (binary only, 0 < r <= 1) is the minority/majority ratio SMOTE
    aims for; with "smote+class_weight" the class weights balance the rest.
    """
    _check_options(imbalance, smote_k_neighbors, smote_ratio)
    splits = raw.presplit or _split(*raw.parts()[0], split, seed)
    label_names = order_labels(np.concatenate([y for _, y in splits.values()]))
    if smote_ratio is not None and len(label_names) != 2:
        raise InvalidConfig(
            f"smote_ratio applies to binary datasets only; this one has {len(label_names)} "
            "classes: leave smote_ratio unset to balance every class"
        )
    encoded = {name: (X, encode_labels(y, label_names)) for name, (X, y) in splits.items()}
    _require_every_class(encoded, label_names, presplit=raw.presplit is not None)
    mean, std = fit_scaler(encoded["train"][0])
    scaled = {name: (standardize(X, mean, std), y) for name, (X, y) in encoded.items()}
    X_train, y_train = scaled["train"]
    if "smote" in imbalance:
        X_train, y_train = _smote(
            X_train, y_train, label_names, seed, smote_k_neighbors, smote_ratio
        )
    weights = balanced_weights(y_train, len(label_names)) if "class_weight" in imbalance else None
    counts = {"train_original": _count(scaled["train"][1], label_names)}
    counts |= {"train": _count(y_train, label_names)}
    counts |= {name: _count(scaled[name][1], label_names) for name in ("val", "test")}
    return PreparedData(
        X_train=X_train,
        y_train=y_train,
        X_val=scaled["val"][0],
        y_val=scaled["val"][1],
        X_test=scaled["test"][0],
        y_test=scaled["test"][1],
        label_names=label_names,
        scaler_mean=mean,
        scaler_std=std,
        class_weight=weights,
        counts=counts,
        imbalance=imbalance,
    )


def order_labels(y: np.ndarray) -> list[str]:
    """Sorted labels; for binary, index 1 (the positive class) is the rarer one.

    Metrics like F1, PR-AUC and ROC-AUC then score the class a practitioner
    usually cares about. Ties keep sorted order, so the larger label is positive.
    """
    labels, counts = np.unique(y, return_counts=True)
    names = [str(label) for label in labels]
    if len(names) == 2 and counts[0] < counts[1]:
        names.reverse()
    return names


def encode_labels(y: np.ndarray, label_names: list[str]) -> np.ndarray:
    """int64 index of each label in `label_names`."""
    present, inverse = np.unique(y.astype(str), return_inverse=True)
    position = {name: i for i, name in enumerate(label_names)}
    remap = np.array([position[str(name)] for name in present], dtype=np.int64)
    encoded: np.ndarray = remap[inverse.reshape(-1)]
    return encoded


def fit_scaler(X_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std over every training sequence and time step (float64)."""
    flat = X_train.reshape(-1, X_train.shape[-1]).astype(np.float64)
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    std[std < _MIN_STD] = 1.0
    return mean, std


def standardize(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    scaled: np.ndarray = ((X - mean) / std).astype(np.float32)
    return scaled


def balanced_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """sklearn's "balanced" weights: n_samples / (n_classes * count of the class)."""
    from sklearn.utils.class_weight import compute_class_weight  # slow import, used rarely

    classes = np.arange(n_classes)
    weights = compute_class_weight("balanced", classes=classes, y=y)
    return {int(c): float(w) for c, w in zip(classes, weights, strict=True)}


def _check_options(imbalance: str, k_neighbors: int, ratio: float | None) -> None:
    if imbalance not in IMBALANCE_STRATEGIES:
        raise InvalidConfig(
            f"unknown imbalance strategy {imbalance!r}; use one of "
            f"{', '.join(IMBALANCE_STRATEGIES)}"
        )
    if k_neighbors < 1:
        raise InvalidConfig(f"smote_k_neighbors must be at least 1, got {k_neighbors}")
    if ratio is None:
        return
    if "smote" not in imbalance:
        raise InvalidConfig(
            f"smote_ratio applies to imbalance='smote' or 'smote+class_weight', not {imbalance!r}"
        )
    if not 0 < ratio <= 1:
        raise InvalidConfig(f"smote_ratio must be in (0, 1], got {ratio}")


def _split(X: np.ndarray, y: np.ndarray, split: SplitSpec, seed: int) -> Splits:
    """Stratified, seeded train/val/test split (two calls to train_test_split)."""
    from sklearn.model_selection import train_test_split  # slow import, used rarely

    indices = np.arange(len(y))
    try:
        rest, test = train_test_split(indices, test_size=split.test, stratify=y, random_state=seed)
        val_share = split.val / (split.train + split.val)
        train, val = train_test_split(
            rest, test_size=val_share, stratify=y[rest], random_state=seed
        )
    except ValueError as exc:
        raise InvalidDataset(
            f"cannot split {len(y)} sequences into stratified train/val/test with fractions "
            f"{split.train}/{split.val}/{split.test}: {exc}; use a larger dataset, larger "
            "val/test fractions, or drop classes with fewer than 3 sequences"
        ) from exc
    return {
        name: (X[part], y[part]) for name, part in (("train", train), ("val", val), ("test", test))
    }


def _require_every_class(splits: Splits, label_names: list[str], *, presplit: bool) -> None:
    for name, (_, y) in splits.items():
        missing = [label_names[c] for c in range(len(label_names)) if not np.any(y == c)]
        if not missing:
            continue
        fix = (
            "save X and y only and let seqtune split them"
            if presplit
            else "use a larger dataset or larger val/test fractions (e.g. val=0.2, test=0.2)"
        )
        raise InvalidDataset(
            f"the {name} split has no sequences of class {', '.join(map(repr, missing))}; "
            f"every split needs every class: {fix}"
        )


def _smote(
    X: np.ndarray,
    y: np.ndarray,
    label_names: list[str],
    seed: int,
    k_neighbors: int,
    ratio: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """SMOTE on the flattened (n, timesteps * features) training split, reshaped back."""
    from imblearn.over_sampling import SMOTE  # imblearn adds ~1.5 s to any import

    counts = np.bincount(y, minlength=len(label_names))
    smallest = int(np.argmin(counts))
    if counts[smallest] <= k_neighbors:
        n = int(counts[smallest])
        fix = f"smote_k_neighbors={n - 1} or " if n > 1 else ""
        raise InvalidDataset(
            f"class {label_names[smallest]!r} has only {n} sequences in the training split; "
            f"SMOTE needs more than k_neighbors={k_neighbors}: use {fix}imbalance='class_weight'"
        )
    if ratio is not None and ratio < counts.min() / counts.max():
        raise InvalidConfig(
            f"smote_ratio={ratio} is below the training split's minority/majority ratio "
            f"{counts.min() / counts.max():.3f}; SMOTE only adds sequences: use a ratio between "
            "that and 1"
        )
    sampler = SMOTE(
        sampling_strategy="auto" if ratio is None else ratio,
        k_neighbors=k_neighbors,
        random_state=seed,
    )
    X_flat, y_res = sampler.fit_resample(X.reshape(len(X), -1), y)
    return np.asarray(X_flat, dtype=np.float32).reshape(-1, *X.shape[1:]), np.asarray(
        y_res, dtype=np.int64
    )


def _count(y: np.ndarray, label_names: list[str]) -> dict[str, int]:
    counts = np.bincount(y, minlength=len(label_names))
    return {name: int(count) for name, count in zip(label_names, counts, strict=True)}
