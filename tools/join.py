"""`seqtune worker`: join a study from any machine that reaches its storage.

For machines without Dask (a Slurm job array, a few SSH sessions): each
process runs Optuna's own `study.optimize` on the shared RDB storage with
heartbeats on, as Optuna documents for distributed optimization. The sampler
and pruner are the study's recorded ones; the objective is the same trainer
and `TFKerasPruningCallback` as on every other path, reporting to a real
trial. A process that dies leaves its trial RUNNING until its heartbeat is
stale; then the next seqtune run on the study (or another joined worker)
marks it FAIL.

This process imports TensorFlow (it trains); the server never does.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import time
from collections.abc import Callable
from functools import partial
from types import FrameType
from typing import Any

import optuna
from pydantic import BaseModel

from tools.errors import StudyNotFound
from tools.heartbeat import HeartbeatSettings, heartbeat_storage
from tools.protocol import TrialResult
from tools.remote import CLAIM_ATTR, report_to_storage, tf_threads
from tools.schemas import StudyConfig
from tools.search_space import resolve_search_space, suggest_params
from tools.studies import build_pruner, build_sampler, prepare_here, recorded_config
from tools.trials import TrialInfo, record_outcome, trial_job
from tools.worker import load_trainer, run_guarded
from tools.workspace import Workspace


class JoinReport(BaseModel):
    study_name: str
    worker: str
    trials: list[TrialInfo]
    counts: dict[str, int]


class _TrialFailedHere(Exception):
    """The trainer failed the trial (its reason is in the trial's user attrs)."""


def join_study(
    ws: Workspace,
    study_name: str,
    n_trials: int | None,
    timeout_s: float | None,
    trainer: str = "keras",
    dataset: str | None = None,
    on_trial: Callable[[TrialInfo], None] = lambda info: None,
) -> JoinReport:
    """Train trials of `study_name` here until `n_trials` or `timeout_s` (or SIGTERM)."""
    storage = heartbeat_storage(ws.storage_url, HeartbeatSettings.from_env())
    study, config = _open(storage, study_name)
    data_dir = prepare_here(ws, study_name, config, dataset)
    space = resolve_search_space(config.search_space)
    me = f"{socket.gethostname()}:{os.getpid()}"
    runner, stop_exc, _ = load_trainer(trainer, tf_threads())
    done: list[TrialInfo] = []

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(CLAIM_ATTR, me)
        params = suggest_params(trial, space)
        job = trial_job(study_name, trial.number, params, str(data_dir), config)
        started = time.monotonic()
        result = run_guarded(runner, stop_exc, job, partial(report_to_storage, storage, trial))
        info = TrialInfo(number=trial.number, state="RUNNING", params=params, epochs=result.epochs)
        info.seconds = round(time.monotonic() - started, 3)
        info.reason, info.value = result.reason, result.value
        record_outcome(trial, info, result)
        done.append(info)
        return _outcome(result)

    def note(_: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        mine = next((t for t in done if t.number == frozen.number), None)
        if mine is not None:
            mine.state = frozen.state.name
            on_trial(mine)

    # On Ctrl-C or SIGTERM Optuna fails the running trial; then report what was done.
    with _sigterm_as_interrupt(), contextlib.suppress(KeyboardInterrupt):
        study.optimize(
            objective,
            n_trials=n_trials,
            timeout=timeout_s,
            catch=(_TrialFailedHere,),
            callbacks=[note],
            gc_after_trial=True,
        )
    counts: dict[str, int] = {}
    for info in done:
        counts[info.state] = counts.get(info.state, 0) + 1
    return JoinReport(study_name=study_name, worker=me, trials=done, counts=counts)


def _open(storage: Any, study_name: str) -> tuple[optuna.Study, StudyConfig]:
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        raise StudyNotFound(
            f"study '{study_name}' not found in the storage; create it first (create_study)"
        ) from None
    config = recorded_config(storage, study_id, study_name, "the storage")
    # Seeded, but not the seed of any other process: joined workers propose different points.
    seed = config.seed + len(storage.get_all_trials(study_id, deepcopy=False)) + os.getpid()
    study = optuna.load_study(
        study_name=study_name,
        storage=storage,
        sampler=build_sampler(config.sampler, seed % 2**31),
        pruner=build_pruner(config.pruner, config.max_epochs),
    )
    return study, config


def _outcome(result: TrialResult) -> float:
    if result.state == "pruned":
        raise optuna.TrialPruned()
    if result.state == "fail" or result.value is None or not math.isfinite(result.value):
        raise _TrialFailedHere(result.reason)
    return result.value


class _sigterm_as_interrupt:
    """SIGTERM (a batch scheduler's stop) ends the loop like Ctrl-C: the trial is failed."""

    def __enter__(self) -> None:
        self._previous = signal.signal(signal.SIGTERM, self._raise)

    def __exit__(self, *exc_info: object) -> None:
        signal.signal(signal.SIGTERM, self._previous)

    @staticmethod
    def _raise(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt
