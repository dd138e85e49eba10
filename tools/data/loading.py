"""Load a dataset (builtin, .npz or long-format .csv) into validated arrays."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.data.csv_long import read_long_csv
from tools.data.files import check_file_size, file_sha256, resolve_dataset_path
from tools.data.npz import read_npz_arrays
from tools.data.validation import validate_arrays, validate_presplit
from tools.datasets.gait import make_gait_dataset
from tools.errors import InvalidDataset
from tools.schemas import CsvOptions

BUILTIN_PREFIX = "builtin:"
BUILTIN_DATASETS = ("builtin:gait",)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class RawDataset:
    """A loaded, validated dataset: either X and y, or a pre-split dict (never both)."""

    source: str
    path: Path | None
    sha256: str
    X: np.ndarray | None
    y: np.ndarray | None
    presplit: dict[str, tuple[np.ndarray, np.ndarray]] | None

    def parts(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The (X, y) pairs the dataset is made of: its three splits, or the whole."""
        if self.presplit is not None:
            return list(self.presplit.values())
        assert self.X is not None and self.y is not None, "X and y are set unless pre-split"
        return [(self.X, self.y)]


def load_dataset(source: str, roots: Sequence[Path], csv: CsvOptions | None = None) -> RawDataset:
    """Read and validate `source`: builtin:<name>, or a .npz / .csv path inside `roots`.

    X becomes float32 (n, timesteps, features); a 2-D X (n, timesteps) is read
    as one feature. y becomes str labels; a (n, 1) column is flattened.
    `csv` applies to .csv files only.
    """
    if source.startswith(BUILTIN_PREFIX):
        return _load_builtin(source)
    path = resolve_dataset_path(source, roots)
    check_file_size(path)
    digest = file_sha256(path)
    if path.suffix.lower() == ".csv":
        X, y = read_long_csv(path, csv or CsvOptions())
        return _flat(source, path, digest, X, y)
    arrays = read_npz_arrays(path)
    if "X" in arrays:
        return _flat(source, path, digest, arrays["X"], arrays["y"])
    presplit = {
        name: _normalize(arrays[f"X_{name}"], arrays[f"y_{name}"], f"{path.name} ({name} split)")
        for name in SPLITS
    }
    validate_presplit(presplit, path.name)
    return RawDataset(source, path, digest, None, None, presplit)


def _load_builtin(source: str) -> RawDataset:
    if source not in BUILTIN_DATASETS:
        raise InvalidDataset(
            f"unknown builtin dataset {source!r}; available: {', '.join(BUILTIN_DATASETS)}"
        )
    X, y = make_gait_dataset()
    digest = hashlib.sha256(X.tobytes() + y.tobytes()).hexdigest()
    return _flat(source, None, digest, X, y)


def _flat(source: str, path: Path | None, digest: str, X: np.ndarray, y: np.ndarray) -> RawDataset:
    where = path.name if path else source
    X, y = _normalize(X, y, where)
    validate_arrays(X, y, where=where)
    return RawDataset(source, path, digest, X, y, None)


def _normalize(X: np.ndarray, y: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """float32 X with a feature axis, str y, before validation."""
    if X.ndim == 2:
        X = X[:, :, np.newaxis]
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    return _as_float32(X, where), _labels_as_str(y, where)


def _as_float32(X: np.ndarray, where: str) -> np.ndarray:
    if X.dtype.kind not in "biuf":
        raise InvalidDataset(f"{where}: X must be numeric, got dtype {X.dtype}")
    with np.errstate(over="ignore"):
        X32 = X.astype(np.float32, copy=False)
    # Finite float64 values past float32's range would turn into inf silently.
    if X32 is not X and X.dtype.kind == "f" and np.isinf(X32).sum() > np.isinf(X).sum():
        raise InvalidDataset(f"{where}: X has values beyond the float32 range; rescale them")
    return X32


def _labels_as_str(y: np.ndarray, where: str) -> np.ndarray:
    """Labels as str: ints and whole-number floats by their integer value, bytes decoded."""
    kind = y.dtype.kind
    if kind == "U":
        return y
    if kind == "S":
        return np.char.decode(y, "utf-8")
    if kind in "biu":
        return y.astype(str)
    if kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise InvalidDataset(
                f"{where}: y holds non-integer numbers; y must hold class labels "
                "(str or int), not a regression target"
            )
        return y.astype(np.int64).astype(str)
    raise InvalidDataset(f"{where}: y must hold class labels (str or int), got dtype {y.dtype}")
