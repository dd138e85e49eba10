"""One trial trained on another machine (a Dask worker), straight on the shared storage.

Remote workers cannot share the server's pipes, so here the trial is a real
`optuna.Trial` on the shared RDB storage: the same trainer and the same
`TFKerasPruningCallback` report each epoch and ask the study's pruner
directly, and a heartbeat thread keeps the trial alive in the storage. The
server still asks for the trial and tells its outcome, so budgets, retries
and failure counts work as with local workers.

The prepared train/val arrays travel with the task (the test split never
does), so worker machines need no shared filesystem.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import socket
import tempfile
import threading
from functools import partial
from pathlib import Path
from typing import Any

import optuna

from tools.data.storage import META_FILE
from tools.heartbeat import Heartbeat, HeartbeatSettings, heartbeat_storage
from tools.protocol import Decision, EpochReport, Message, TrialJob, TrialResult
from tools.studies import build_pruner, recorded_config
from tools.worker import load_trainer, run_guarded

TRAINING_FILES = ("train.npz", "val.npz", META_FILE)
CLAIM_ATTR = "seqtune_remote_worker"

# One trial at a time per worker process, whatever its thread count: a trial
# uses all the cores (or the GPU) this worker was given.
_one_trial_at_a_time = threading.Lock()
_trainer: tuple[Any, type[BaseException]] | None = None


class RemoteSpec(Message):
    """What a remote worker needs besides the job: where the study lives and how to train."""

    storage_url: str
    trainer: str = "keras"
    heartbeat_s: int = 10
    heartbeat_grace_s: int = 60


def read_training_files(data_dir: Path) -> dict[str, bytes]:
    """The files a trial may read, as bytes to ship (train, val, metadata; never test)."""
    return {name: (data_dir / name).read_bytes() for name in TRAINING_FILES}


def files_digest(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()[:24]


def run_remote_trial(
    job: dict[str, Any], spec: dict[str, Any], files: dict[str, bytes]
) -> dict[str, Any]:
    """The Dask task: train one trial here; returns a `TrialResult` as a dict."""
    with _one_trial_at_a_time:
        result = _run(TrialJob.model_validate(job), RemoteSpec.model_validate(spec), files)
    return result.model_dump(mode="json")


def _run(job: TrialJob, spec: RemoteSpec, files: dict[str, bytes]) -> TrialResult:
    settings = HeartbeatSettings(spec.heartbeat_s, spec.heartbeat_grace_s)
    storage = heartbeat_storage(spec.storage_url, settings)
    study_id = storage.get_study_id_from_name(job.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, job.trial_number)
    refusal = _claim(storage, trial_id)
    if refusal is not None:
        return TrialResult(state="fail", reason=refusal)
    runner, stop_exc = _load_trainer(spec)
    study = optuna.load_study(
        study_name=job.study_name,
        storage=storage,
        pruner=_recorded_pruner(storage, study_id, job.study_name),
    )
    trial = optuna.Trial(study, trial_id)
    local_job = job.model_copy(update={"data_dir": str(_materialize(files))})
    with Heartbeat(storage, trial_id):
        return run_guarded(runner, stop_exc, local_job, partial(report_to_storage, storage, trial))


def _claim(storage: optuna.storages.RDBStorage, trial_id: int) -> str | None:
    """Refuse a trial that ended or that a lost worker started (Dask reschedules its tasks)."""
    trial = storage.get_trial(trial_id)
    if trial.state.is_finished():
        return f"trial ended ({trial.state.name}) before this worker could start it"
    if CLAIM_ATTR in trial.user_attrs:
        return f"worker {trial.user_attrs[CLAIM_ATTR]} was lost while training this trial"
    storage.set_trial_user_attr(trial_id, CLAIM_ATTR, _me())
    return None


def report_to_storage(
    storage: optuna.storages.RDBStorage, trial: optuna.Trial, report: EpochReport
) -> Decision:
    """Report the epoch to the study and ask its pruner; stop once the trial was ended
    elsewhere (cancelled, timed out, or failed stale by the server)."""
    if storage.get_trial(trial._trial_id).state.is_finished():
        return Decision(stop=True)
    if not math.isfinite(report.value):
        return Decision()
    try:
        trial.report(report.value, report.epoch)
        return Decision(prune=bool(trial.should_prune()))
    except optuna.exceptions.UpdateFinishedTrialError:
        return Decision(stop=True)


def _recorded_pruner(
    storage: optuna.storages.RDBStorage, study_id: int, name: str
) -> optuna.pruners.BasePruner:
    config = recorded_config(storage, study_id, name, "the shared storage")
    return build_pruner(config.pruner, config.max_epochs)


def _materialize(files: dict[str, bytes]) -> Path:
    """Write the shipped files once per content into a local cache folder."""
    root = Path(tempfile.gettempdir()) / "seqtune-remote"
    folder = root / files_digest(files)
    if not (folder / META_FILE).is_file():
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="staging-", dir=root))
        for name, content in files.items():
            (staging / name).write_bytes(content)
        try:
            staging.rename(folder)  # atomic: a folder is complete or absent
        except OSError:  # another worker on this machine got there first
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def _load_trainer(spec: RemoteSpec) -> tuple[Any, type[BaseException]]:
    """Import the trainer once per worker process: TensorFlow stays warm across trials."""
    global _trainer
    if _trainer is None:
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        runner, stop_exc, _ = load_trainer(spec.trainer, tf_threads(_dask_workers_here()))
        _trainer = (runner, stop_exc)
    return _trainer


def tf_threads(sharing: int = 1) -> int:
    """SEQTUNE_TF_THREADS, else this process's share of its machine's cores."""
    if env := os.environ.get("SEQTUNE_TF_THREADS"):
        return max(1, int(env))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, sharing))


def _dask_workers_here() -> int:
    """How many Dask workers share this machine (1 outside a Dask worker)."""
    try:
        from distributed import get_worker

        worker = get_worker()
        workers = worker.client.scheduler_info(n_workers=-1)["workers"].values()
        return sum(1 for info in workers if info["host"] == worker.ip)
    except (ImportError, ValueError):
        return 1


def _me() -> str:
    """This worker's Dask address (what the server evicts if it freezes), else host:pid."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"
