"""Predict with a study's final model: scale like training, infer in a worker, write files.

Inputs may be unlabelled: a .npz with only `X` is enough. When labels are
present, the result also reports accuracy against them.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from pydantic import BaseModel, Field

from tools.atomic import atomic_file
from tools.data import load_dataset
from tools.data.files import check_file_size, resolve_dataset_path
from tools.data.validation import check_finite
from tools.errors import InvalidDataset, NothingToShow
from tools.metrics import predict_labels, to_class_probs
from tools.protocol import PredictJob
from tools.retrain import ProgressHandler, TaskExecutor, final_dir
from tools.schemas import CsvOptions
from tools.studies import load_study
from tools.workspace import Workspace

PREVIEW_ROWS = 20


class Prediction(BaseModel):
    index: int
    label: str
    probability: float = Field(description="Probability of the predicted label.")


class PredictResult(BaseModel):
    study_name: str
    n: int
    label_counts: dict[str, int]
    threshold: float | None = Field(description="Binary decision threshold used.")
    accuracy: float | None = Field(description="Against the input's labels, when it has them.")
    preview: list[Prediction] = Field(description=f"The first {PREVIEW_ROWS} predictions.")
    csv_path: str
    npz_path: str


def _inference_meta(ws: Workspace, study_name: str) -> tuple[Path, dict[str, Any]]:
    load_study(ws, study_name)  # a helpful StudyNotFound first
    folder = final_dir(ws, study_name)
    model = folder / "model.keras"
    if not model.is_file() or not (folder / "inference.json").is_file():
        raise NothingToShow(
            f"study '{study_name}' has no final model yet: call retrain_and_evaluate first"
        )
    meta: dict[str, Any] = json.loads((folder / "inference.json").read_text())
    return model, meta


def load_inputs(
    source: str, roots: list[Path], csv_options: CsvOptions | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Sequences to predict, and their labels when the file has them."""
    if source.endswith(".npz") and not source.startswith("builtin:"):
        path = resolve_dataset_path(source, roots)
        check_file_size(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if "y" not in data.files and "X" in data.files:
                    X = np.asarray(data["X"])
                    return _checked(X, path.name), None
        except ValueError as exc:
            raise InvalidDataset(f"cannot read {path.name}: {exc}") from exc
    raw = load_dataset(source, roots, csv_options)
    parts = raw.parts()
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return X, y


def _checked(X: np.ndarray, where: str) -> np.ndarray:
    if X.dtype.kind not in "biuf":
        raise InvalidDataset(f"{where}: X must be numeric, got dtype {X.dtype}")
    if X.ndim == 2:
        X = X[:, :, None]
    if X.ndim != 3 or len(X) == 0:
        raise InvalidDataset(f"{where}: X must be (sequences, timesteps, features); got {X.shape}")
    check_finite(X, where)
    return X.astype(np.float32)


def _scaled(X: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    expected = (int(meta["timesteps"]), int(meta["features"]))
    if tuple(X.shape[1:]) != expected:
        raise InvalidDataset(
            f"input sequences are {X.shape[1]} steps x {X.shape[2]} features; the model was "
            f"trained on {expected[0]} x {expected[1]}"
        )
    mean = np.asarray(meta["scaler_mean"], dtype=np.float32)
    std = np.asarray(meta["scaler_std"], dtype=np.float32)
    return ((X - mean) / std).astype(np.float32)


async def predict(
    ws: Workspace,
    executor: TaskExecutor,
    study_name: str,
    dataset: str,
    csv_options: CsvOptions | None,
    on_progress: ProgressHandler,
) -> PredictResult:
    def prepare() -> tuple[Path, dict[str, Any], np.ndarray | None, Path]:
        model, meta = _inference_meta(ws, study_name)
        X, y = load_inputs(dataset, list(ws.data_roots), csv_options)
        out = final_dir(ws, study_name) / "predictions" / uuid.uuid4().hex[:8]
        out.mkdir(parents=True, exist_ok=True)
        np.savez(out / "input.npz", X=_scaled(X, meta))
        return model, meta, y, out

    model, meta, y, out = await anyio.to_thread.run_sync(prepare)
    job = PredictJob(
        model_path=str(model), input_path=str(out / "input.npz"), output_path=str(out / "probs.npz")
    )
    await executor.run_task("predict", job.model_dump(), on_progress, executor.threads_for(1))
    return await anyio.to_thread.run_sync(_summarise, study_name, meta, y, out)


def _summarise(
    study_name: str, meta: dict[str, Any], y: np.ndarray | None, out: Path
) -> PredictResult:
    with np.load(out / "probs.npz", allow_pickle=False) as data:
        probs = to_class_probs(np.asarray(data["probs"]))
    (out / "input.npz").unlink(missing_ok=True)
    labels: list[str] = list(meta["label_names"])
    threshold = meta.get("threshold") if len(labels) == 2 else None
    predicted = predict_labels(probs, threshold if threshold is not None else 0.5)
    names = [labels[i] for i in predicted]
    csv_path = out / "predictions.csv"
    with atomic_file(csv_path) as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(["index", "label", *[f"p_{name}" for name in labels]])
        writer.writerows([i, names[i], *[f"{p:.6f}" for p in probs[i]]] for i in range(len(names)))
        text.flush()
        text.detach()  # the atomic writer closes the underlying file
    npz_path = out / "predictions.npz"
    np.savez(npz_path, probs=probs, labels=np.asarray(names), label_names=np.asarray(labels))
    accuracy = float(np.mean(np.asarray(names) == y.astype(str))) if y is not None else None
    return PredictResult(
        study_name=study_name,
        n=len(names),
        label_counts=dict(Counter(names)),
        threshold=threshold,
        accuracy=accuracy,
        preview=[
            Prediction(index=i, label=names[i], probability=float(probs[i, predicted[i]]))
            for i in range(min(PREVIEW_ROWS, len(names)))
        ],
        csv_path=str(csv_path),
        npz_path=str(npz_path),
    )
