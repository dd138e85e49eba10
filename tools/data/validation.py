"""Checks that arrays can be trained on, each failure saying what to fix."""

from __future__ import annotations

import numpy as np

from tools.errors import InvalidDataset

MIN_SEQUENCES = 10


def validate_arrays(
    X: np.ndarray, y: np.ndarray, *, where: str = "dataset", min_sequences: int = MIN_SEQUENCES
) -> None:
    """Raise InvalidDataset, with what to fix, unless X (n, timesteps, features) and y (n,) fit.

    `min_sequences` is lowered for the parts of a pre-split file; the whole must
    still hold MIN_SEQUENCES.
    """
    if X.dtype.kind not in "biuf":
        raise InvalidDataset(f"{where}: X must be numeric, got dtype {X.dtype}")
    if X.ndim != 3:
        raise InvalidDataset(
            f"{where}: X must have 3 dimensions (sequences, timesteps, features); got shape "
            f"{X.shape}"
        )
    if y.ndim != 1:
        raise InvalidDataset(
            f"{where}: y must have 1 dimension (one label per sequence); got shape {y.shape}"
        )
    if len(X) != len(y):
        raise InvalidDataset(f"{where}: X has {len(X)} sequences but y has {len(y)} labels")
    n, timesteps, features = X.shape
    if timesteps < 2 or features < 1:
        raise InvalidDataset(
            f"{where}: X has shape {X.shape}; need at least 2 timesteps and 1 feature"
        )
    if n < min_sequences:
        raise InvalidDataset(f"{where}: only {n} sequences; need at least {min_sequences}")
    check_finite(X, where)
    classes = np.unique(y)
    if len(classes) < 2:
        raise InvalidDataset(
            f"{where}: only one class {str(classes[0])!r} in {n} sequences; a classifier "
            "needs at least two classes"
        )


def validate_presplit(presplit: dict[str, tuple[np.ndarray, np.ndarray]], where: str) -> None:
    """Each part valid on its own, all parts shaped alike, MIN_SEQUENCES in total."""
    for name, (X, y) in presplit.items():
        validate_arrays(X, y, where=f"{where} ({name} split)", min_sequences=2)
    shapes = {name: X.shape[1:] for name, (X, _) in presplit.items()}
    if len(set(shapes.values())) > 1:
        seen = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise InvalidDataset(f"{where}: splits differ in (timesteps, features): {seen}")
    total = sum(len(y) for _, y in presplit.values())
    if total < MIN_SEQUENCES:
        raise InvalidDataset(f"{where}: only {total} sequences; need at least {MIN_SEQUENCES}")


def check_finite(X: np.ndarray, where: str) -> None:
    if X.dtype.kind != "f":
        return
    bad = ~np.isfinite(X)
    if not bad.any():
        return
    n_nan = int(np.isnan(X).sum())
    first = int(np.argmax(bad.reshape(len(X), -1).any(axis=1)))
    raise InvalidDataset(
        f"{where}: X has {n_nan} NaN and {int(bad.sum()) - n_nan} inf values, first in sequence "
        f"{first}; fill or drop them before tuning"
    )
