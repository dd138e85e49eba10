"""The tuning objective, run inside a worker process. Imports TensorFlow.

The worker's trial proxy (`report`/`should_prune` over the pipe) is handed
to the stock `optuna_integration.TFKerasPruningCallback`, so pruning runs
exactly as in the guide while the server stays the only storage writer.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import optuna
import tensorflow as tf
from optuna_integration import TFKerasPruningCallback

from tools.data import TrainingArrays, load_training_arrays
from tools.metrics import score_metrics
from tools.model import build_model
from tools.protocol import Decision, EpochReport, TrialJob, TrialResult

# Metrics Keras computes itself; the others come from `score_metrics` on val.
_KERAS_METRICS = {"val_loss", "val_accuracy"}


class StopRequested(Exception):
    """The server asked the trial to stop (run cancelled or server shutting down)."""


def configure_tensorflow(threads: int) -> None:
    """Pin TF's thread pools to this worker's share of cores; make ops deterministic."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
    tf.config.experimental.enable_op_determinism()


class PipeTrial:
    """The part of `optuna.Trial` the pruning callback uses, answered by the server."""

    def __init__(self, ask_server: Callable[[EpochReport], Decision]) -> None:
        self._ask_server = ask_server
        self._decision = Decision()
        self.epoch_metrics: dict[str, float] = {}
        self.last_epoch = -1

    def report(self, value: float, step: int) -> None:
        self.last_epoch = step
        report = EpochReport(epoch=step, value=value, metrics=dict(self.epoch_metrics))
        self._decision = self._ask_server(report)
        if self._decision.stop:
            raise StopRequested()

    def should_prune(self) -> bool:
        return self._decision.prune


class ValMetrics(keras.callbacks.Callback):  # type: ignore[misc]
    """Adds sklearn-computed val metrics to the epoch logs (when the study needs them)."""

    def __init__(self, arrays: TrainingArrays, trial: PipeTrial, extra: bool) -> None:
        super().__init__()
        self._arrays = arrays
        self._trial = trial
        self._extra = extra

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        if self._extra:
            probs = self.model.predict(self._arrays.X_val, verbose=0, batch_size=256)
            for name, value in score_metrics(self._arrays.y_val, probs).items():
                if name != "accuracy":
                    logs[f"val_{name}"] = value
        self._trial.epoch_metrics = {k: float(v) for k, v in logs.items()}


_cache: dict[str, tuple[float, TrainingArrays]] = {}


def cached_training_arrays(data_dir: str) -> TrainingArrays:
    """Load once per worker; reload only when the prepared files change."""
    stamp = os.stat(Path(data_dir) / "train.npz").st_mtime
    hit = _cache.get(data_dir)
    if hit is None or hit[0] != stamp:
        _cache.clear()
        _cache[data_dir] = (stamp, load_training_arrays(Path(data_dir)))
    return _cache[data_dir][1]


def fresh_model(params: dict[str, Any], arrays: TrainingArrays, seed: int) -> Any:
    """A new model in a fresh Keras session, seeded: same params + seed, same weights."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    return build_model(params, arrays.X_train.shape[1:], arrays.n_classes)


def fit(
    model: Any, arrays: TrainingArrays, params: dict[str, Any], epochs: int, callbacks: list[Any]
) -> Any:
    """Train on the (resampled) train split, validating on val, with the tuned batch size."""
    return model.fit(
        arrays.X_train,
        arrays.y_train,
        validation_data=(arrays.X_val, arrays.y_val),
        epochs=epochs,
        batch_size=int(params["batch_size"]),
        class_weight=arrays.class_weight,
        callbacks=callbacks,
        verbose=0,
    )


def run_trial(job: TrialJob, ask_server: Callable[[EpochReport], Decision]) -> TrialResult:
    """Train one configuration; return its best-epoch value, or pruned / failed."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    arrays = cached_training_arrays(job.data_dir)
    timings["load_s"] = time.perf_counter() - started

    started = time.perf_counter()
    model = fresh_model(job.params, arrays, job.seed)
    timings["build_s"] = time.perf_counter() - started

    trial = PipeTrial(ask_server)
    mode = "max" if job.direction == "maximize" else "min"
    callbacks = [
        ValMetrics(arrays, trial, extra=job.metric not in _KERAS_METRICS),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.EarlyStopping(
            monitor=job.metric, mode=mode, patience=job.patience, restore_best_weights=True
        ),
        TFKerasPruningCallback(trial, monitor=job.metric),
    ]
    started = time.perf_counter()
    try:
        history = fit(model, arrays, job.params, job.max_epochs, callbacks)
    except optuna.TrialPruned:
        timings["fit_s"] = time.perf_counter() - started
        return TrialResult(state="pruned", epochs=trial.last_epoch + 1, timings=timings)
    timings["fit_s"] = time.perf_counter() - started
    return _finished(job, history.history.get(job.metric, []), timings)


def _finished(job: TrialJob, curve: list[float], timings: dict[str, float]) -> TrialResult:
    values = [(i, float(v)) for i, v in enumerate(curve) if math.isfinite(float(v))]
    if not values:
        return TrialResult(
            state="fail",
            epochs=len(curve),
            reason=f"{job.metric} was never finite (training diverged); try a lower learning_rate",
            timings=timings,
        )
    pick = max if job.direction == "maximize" else min
    best_epoch, best = pick(values, key=lambda item: item[1])
    return TrialResult(
        state="complete", value=best, epochs=len(curve), best_epoch=best_epoch, timings=timings
    )
