"""Prepared splits on disk: what a study's workers train on.

Training code reads train.npz, val.npz and prepared.json only; test.npz is
read by the final evaluation alone, so the objective cannot see the test set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tools.atomic import atomic_file
from tools.data.preparation import PreparedData
from tools.errors import InvalidDataset

META_FILE = "prepared.json"


@dataclass(frozen=True, eq=False)
class TrainingArrays:
    """Everything a tuning trial may see: train and validation, never test."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    class_weight: dict[int, float] | None
    label_names: list[str]
    n_classes: int


def save_prepared(prepared: PreparedData, folder: Path) -> None:
    """Write train/val/test .npz files, then prepared.json (last: its presence means complete)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train", "val", "test"):
        with atomic_file(folder / f"{name}.npz") as stream:
            np.savez(stream, X=getattr(prepared, f"X_{name}"), y=getattr(prepared, f"y_{name}"))
    with atomic_file(folder / META_FILE) as stream:
        stream.write(json.dumps(_meta(prepared), indent=2).encode())


def load_training_arrays(folder: Path) -> TrainingArrays:
    meta = load_prepared_meta(folder)
    X_train, y_train = _read_split(folder, "train")
    X_val, y_val = _read_split(folder, "val")
    weights = meta["class_weight"]
    return TrainingArrays(
        X_train=X_train,
        y_train=y_train,
        X_val=X_val,
        y_val=y_val,
        class_weight={int(k): float(v) for k, v in weights.items()} if weights else None,
        label_names=list(meta["label_names"]),
        n_classes=int(meta["n_classes"]),
    )


def load_test_arrays(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The held-out test split: for the final evaluation only."""
    return _read_split(folder, "test")


def load_prepared_meta(folder: Path) -> dict[str, Any]:
    path = folder / META_FILE
    try:
        meta: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InvalidDataset(f"no prepared data in {folder}: {META_FILE} is missing") from exc
    except (OSError, ValueError) as exc:
        raise InvalidDataset(f"cannot read {path}: {exc}") from exc
    return meta


def _meta(prepared: PreparedData) -> dict[str, Any]:
    _, timesteps, features = prepared.X_train.shape
    weights = prepared.class_weight
    return {
        "label_names": prepared.label_names,
        "scaler_mean": prepared.scaler_mean.tolist(),
        "scaler_std": prepared.scaler_std.tolist(),
        "class_weight": {str(k): v for k, v in weights.items()} if weights else None,
        "counts": prepared.counts,
        "imbalance": prepared.imbalance,
        "timesteps": int(timesteps),
        "features": int(features),
        "n_classes": len(prepared.label_names),
    }


def _read_split(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    path = folder / f"{name}.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            return np.asarray(data["X"]), np.asarray(data["y"])
    except FileNotFoundError as exc:
        raise InvalidDataset(
            f"prepared data in {folder} is incomplete: {path.name} is missing"
        ) from exc
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidDataset(f"cannot read {path}: {exc}") from exc
