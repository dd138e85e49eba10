"""Worker-side final training and inference. Imports TensorFlow.

`retrain`: a fresh model from the chosen params, trained with EarlyStopping,
ModelCheckpoint and ReduceLROnPlateau on the val split, then the best
checkpoint predicts the val and test splits (the only place the test split
is read). `predict`: a saved model predicts already-scaled sequences.
Metrics are computed by the server from the saved probabilities.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tools.data import load_test_arrays
from tools.objective import cached_training_arrays, fit, fresh_model
from tools.protocol import PARTIAL_MODEL, PROBS_FILE, PredictJob, RetrainJob

Progress = Callable[[dict[str, Any]], None]


class _EpochProgress(keras.callbacks.Callback):  # type: ignore[misc]
    def __init__(self, progress: Progress, total: int) -> None:
        super().__init__()
        self._progress, self._total = progress, total

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self._progress({"epoch": epoch, "total": self._total, "logs": logs})


def retrain(body: dict[str, Any], progress: Progress) -> dict[str, Any]:
    job = RetrainJob.model_validate(body)
    out_dir = Path(job.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = cached_training_arrays(job.data_dir)
    model = fresh_model(job.params, arrays, job.seed)
    mode = "max" if job.direction == "maximize" else "min"
    checkpoint = out_dir / PARTIAL_MODEL
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor=job.monitor, mode=mode, patience=job.patience, restore_best_weights=True
        ),
        keras.callbacks.ModelCheckpoint(
            str(checkpoint), monitor=job.monitor, mode=mode, save_best_only=True
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor=job.monitor,
            mode=mode,
            patience=job.reduce_lr_patience,
            factor=job.reduce_lr_factor,
            min_lr=job.min_lr,
        ),
        keras.callbacks.TerminateOnNaN(),
        _EpochProgress(progress, job.max_epochs),
    ]
    started = time.perf_counter()
    history = fit(model, arrays, job.params, job.max_epochs, callbacks)
    fit_seconds = time.perf_counter() - started
    if not checkpoint.exists():
        raise RuntimeError(f"no checkpoint was saved: {job.monitor} was never finite")
    best_model = keras.models.load_model(checkpoint)
    X_test, _ = load_test_arrays(Path(job.data_dir))
    np.savez(
        out_dir / PROBS_FILE,
        val=best_model.predict(arrays.X_val, verbose=0, batch_size=256),
        test=best_model.predict(X_test, verbose=0, batch_size=256),
    )
    curves = {k: [float(v) for v in values] for k, values in history.history.items()}
    return {
        "history": curves,
        "epochs_trained": len(curves.get("loss", [])),
        "fit_seconds": fit_seconds,
        "model_path": str(checkpoint),
        "probs_path": str(out_dir / PROBS_FILE),
    }


def predict(body: dict[str, Any], progress: Progress) -> dict[str, Any]:
    job = PredictJob.model_validate(body)
    model = keras.models.load_model(job.model_path)
    with np.load(job.input_path, allow_pickle=False) as data:
        X = np.asarray(data["X"])
    expected = tuple(model.input_shape[1:])
    if tuple(X.shape[1:]) != expected:
        raise ValueError(f"input sequences have shape {X.shape[1:]}, the model expects {expected}")
    np.savez(job.output_path, probs=model.predict(X, verbose=0, batch_size=256))
    return {"n": len(X), "output_path": job.output_path}


TASKS: dict[str, Callable[[dict[str, Any], Progress], dict[str, Any]]] = {
    "retrain": retrain,
    "predict": predict,
}
