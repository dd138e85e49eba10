"""The final model: retrain the chosen trial's params, evaluate once on the test split.

Orchestration only (server side, no TensorFlow): training and prediction run
in a worker (`tools.final_training`); metrics, thresholds and artifacts are
computed and written here. Every retrain is recorded in the study, and the
result warns when the test split has been evaluated before (each look at the
test set used for decisions leaks it into model selection).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import anyio
import numpy as np
import optuna
from pydantic import BaseModel, Field

from tools.atomic import write_json_atomic
from tools.data import load_prepared_meta, load_test_arrays, load_training_arrays
from tools.errors import InvalidConfig, NothingToShow
from tools.evaluation import SplitMetrics, best_f1_threshold, evaluate_probs
from tools.protocol import PARTIAL_MODEL, PROBS_FILE, RetrainJob
from tools.search_space import effective_params
from tools.studies import TEST_USES_ATTR, best_trial_or_none, ensure_prepared, load_study
from tools.workspace import Workspace

ProgressHandler = Callable[[dict[str, Any]], Awaitable[None]]
RETRAINS_ATTR = "seqtune_retrains"


class TaskExecutor(Protocol):
    async def run_task(
        self, kind: str, job: dict[str, Any], on_progress: ProgressHandler, threads: int
    ) -> Any: ...

    def threads_for(self, n_workers: int) -> int: ...


class RetrainRequest(BaseModel):
    study_name: str
    trial_number: int | None = Field(None, ge=0, description="Default: the best trial.")
    max_epochs: int = Field(150, ge=1, le=5000)
    patience: int = Field(12, ge=1, le=1000)
    reduce_lr_patience: int = Field(6, ge=1, le=1000)
    reduce_lr_factor: float = Field(0.5, gt=0, lt=1)
    min_lr: float = Field(1e-6, gt=0, le=1)
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="Default: the study seed.")


class ThresholdReport(BaseModel):
    threshold: float = Field(description="Maximises F1 of the positive class on the val split.")
    val: SplitMetrics
    test: SplitMetrics


class RetrainResult(BaseModel):
    study_name: str
    trial_number: int
    params: dict[str, Any]
    monitor: str
    epochs_trained: int
    best_epoch: int = Field(description="1-based epoch of the checkpoint that was kept.")
    stopped_early: bool
    val: SplitMetrics
    test: SplitMetrics
    tuned_threshold: ThresholdReport | None = Field(
        description="Binary tasks: metrics at the val-chosen F1 threshold."
    )
    artifacts: dict[str, str]
    test_evaluations: int = Field(description="Times this study's test split was evaluated.")
    warnings: list[str]
    seconds: float


def final_dir(ws: Workspace, study_name: str) -> Path:
    return ws.study_dir(study_name) / "final"


def _pick_trial(study: optuna.Study, number: int | None) -> optuna.trial.FrozenTrial:
    if number is None:
        best = best_trial_or_none(study)
        if best is None:
            raise NothingToShow(
                f"study '{study.study_name}' has no complete trial yet: run_trials first"
            )
        return best
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise InvalidConfig(
            f"trial {number} does not exist; study '{study.study_name}' has trials "
            f"0..{len(trials) - 1}"
        )
    trial = trials[number]
    if trial.state != optuna.trial.TrialState.COMPLETE:
        raise InvalidConfig(
            f"trial {number} is {trial.state.name}, not COMPLETE; pick a complete trial "
            "(list_trials with states=['COMPLETE']) or omit trial_number for the best"
        )
    return trial


async def retrain_and_evaluate(
    ws: Workspace, executor: TaskExecutor, request: RetrainRequest, on_progress: ProgressHandler
) -> RetrainResult:
    started = time.monotonic()
    study, config, trial, data_dir = await anyio.to_thread.run_sync(_prepare, ws, request)
    params = effective_params(trial.params, config.search_space)
    out_dir = final_dir(ws, request.study_name)
    job = RetrainJob(
        params=params,
        data_dir=str(data_dir),
        out_dir=str(out_dir),
        max_epochs=request.max_epochs,
        patience=request.patience,
        reduce_lr_patience=request.reduce_lr_patience,
        reduce_lr_factor=request.reduce_lr_factor,
        min_lr=request.min_lr,
        seed=config.seed if request.seed is None else request.seed,
    )
    try:
        outcome = await executor.run_task(
            "retrain", job.model_dump(mode="json"), on_progress, executor.threads_for(1)
        )
    except BaseException:
        _discard_partial(out_dir)  # the previous model and reports stay as they were
        raise
    return await anyio.to_thread.run_sync(
        _finish,
        ws,
        study,
        trial.number,
        params,
        data_dir,
        out_dir,
        outcome,
        request,
        time.monotonic() - started,
    )


def _discard_partial(out_dir: Path) -> None:
    for name in (PARTIAL_MODEL, PROBS_FILE):
        (out_dir / name).unlink(missing_ok=True)


def _prepare(ws: Workspace, request: RetrainRequest) -> tuple[Any, ...]:
    study, config = load_study(ws, request.study_name)
    trial = _pick_trial(study, request.trial_number)
    data_dir = ensure_prepared(ws, request.study_name, config)
    return study, config, trial, data_dir


def _finish(
    ws: Workspace,
    study: optuna.Study,
    number: int,
    params: dict[str, Any],
    data_dir: Path,
    out_dir: Path,
    outcome: dict[str, Any],
    request: RetrainRequest,
    seconds: float,
) -> RetrainResult:
    arrays = load_training_arrays(data_dir)
    labels, y_val = arrays.label_names, arrays.y_val
    _, y_test = load_test_arrays(data_dir)
    with np.load(out_dir / PROBS_FILE, allow_pickle=False) as probs:
        val_probs, test_probs = np.asarray(probs["val"]), np.asarray(probs["test"])
    val = evaluate_probs(y_val, val_probs, labels)
    test = evaluate_probs(y_test, test_probs, labels)
    tuned = None
    if len(labels) == 2:
        threshold = best_f1_threshold(y_val, val_probs)
        tuned = ThresholdReport(
            threshold=threshold,
            val=evaluate_probs(y_val, val_probs, labels, threshold),
            test=evaluate_probs(y_test, test_probs, labels, threshold),
        )
    history = outcome["history"]
    val_loss = history.get("val_loss", [])
    best_epoch = int(np.nanargmin(val_loss)) if val_loss else 0
    epochs = int(outcome["epochs_trained"])
    uses = int(study.user_attrs.get(TEST_USES_ATTR, 0)) + 1
    warnings = _warnings(uses)
    artifacts = _write_artifacts(
        out_dir,
        data_dir,
        {
            "params": params,
            "trial_number": number,
            "history": history,
            "best_epoch": best_epoch,
            "epochs": epochs,
            "val": val,
            "test": test,
            "tuned": tuned,
            "labels": labels,
            "request": request.model_dump(),
        },
    )
    result = RetrainResult(
        study_name=request.study_name,
        trial_number=number,
        params=params,
        monitor="val_loss",
        epochs_trained=epochs,
        best_epoch=best_epoch + 1,
        stopped_early=epochs < request.max_epochs,
        val=val,
        test=test,
        tuned_threshold=tuned,
        artifacts=artifacts,
        test_evaluations=uses,
        warnings=warnings,
        seconds=round(seconds, 2),
    )
    _record(study, result)
    return result


def _warnings(uses: int) -> list[str]:
    if uses <= 1:
        return []
    return [
        f"the test split of this study has now been evaluated {uses} times; choosing between "
        "models by their test scores leaks the test set into model selection, so treat these "
        "test metrics as optimistic (compare candidates on val metrics instead)"
    ]


def _write_artifacts(out_dir: Path, data_dir: Path, parts: dict[str, Any]) -> dict[str, str]:
    meta = load_prepared_meta(data_dir)
    paths = {
        name: out_dir / f"{name}.json"
        for name in ("best_params", "metrics", "history", "inference")
    }
    paths["model"] = out_dir / "model.keras"
    # The checkpoint replaces the old model only now that training succeeded.
    os.replace(out_dir / PARTIAL_MODEL, paths["model"])
    _discard_partial(out_dir)
    write_json_atomic(
        paths["best_params"], {"trial_number": parts["trial_number"], "params": parts["params"]}
    )
    write_json_atomic(
        paths["history"],
        {
            "metrics": parts["history"],
            "monitor": "val_loss",
            "best_epoch": parts["best_epoch"],
            "stopped_epoch": parts["epochs"] - 1,
        },
    )
    tuned = parts["tuned"]
    write_json_atomic(
        paths["metrics"],
        {
            "val": parts["val"].model_dump(),
            "test": parts["test"].model_dump(),
            "tuned_threshold": tuned.model_dump() if tuned else None,
            "retrain": parts["request"],
        },
    )
    write_json_atomic(
        paths["inference"],
        {
            "label_names": parts["labels"],
            "scaler_mean": meta["scaler_mean"],
            "scaler_std": meta["scaler_std"],
            "timesteps": meta["timesteps"],
            "features": meta["features"],
            "threshold": tuned.threshold if tuned else None,
        },
    )
    return {name: str(path) for name, path in paths.items()}


def _record(study: optuna.Study, result: RetrainResult) -> None:
    study.set_user_attr(TEST_USES_ATTR, result.test_evaluations)
    retrains = list(study.user_attrs.get(RETRAINS_ATTR, []))
    retrains.append(
        {
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "trial_number": result.trial_number,
            "epochs_trained": result.epochs_trained,
            "test_accuracy": result.test.accuracy,
            "test_balanced_accuracy": result.test.balanced_accuracy,
            "test_f1": result.test.f1,
        }
    )
    study.set_user_attr(RETRAINS_ATTR, retrains)


def load_history(ws: Workspace, study_name: str) -> dict[str, Any] | None:
    """The final model's training curves, or None before the first retrain."""
    path = final_dir(ws, study_name) / "history.json"
    if not path.is_file():
        return None
    history: dict[str, Any] = json.loads(path.read_text())
    return history
