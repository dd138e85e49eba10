"""Optuna heartbeats for trials trained on other machines.

A trial trained by a remote worker (Dask, `seqtune worker`) writes to the
shared RDB storage itself and records a heartbeat every few seconds. When a
machine is lost its heartbeats stop; after the grace period any seqtune
process on the storage marks that trial FAIL, with the reason recorded first
(Optuna's own `fail_stale_trials` cannot record one, as a finished trial's
attrs are frozen). Trials trained by local pipe workers never heartbeat, so
they are never taken for stale.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import optuna

from tools.workspace import open_storage

STALE_REASON = "no heartbeat for {grace} s from the machine training it (machine lost or frozen)"


@dataclass(frozen=True)
class HeartbeatSettings:
    interval_s: int = 10
    grace_s: int = 60

    @classmethod
    def from_env(cls) -> HeartbeatSettings:
        interval = int(os.environ.get("SEQTUNE_HEARTBEAT_S", "10"))
        grace = int(os.environ.get("SEQTUNE_HEARTBEAT_GRACE_S", str(6 * interval)))
        return cls(interval_s=max(1, interval), grace_s=max(2 * interval, grace))


_storages: dict[tuple[str, HeartbeatSettings], optuna.storages.RDBStorage] = {}


def heartbeat_storage(url: str, settings: HeartbeatSettings) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats on, for the processes that train or watch remote trials
    (one per process and URL: engines are costly).

    The server's own storage keeps heartbeats off: Optuna warns on `ask()`
    with them on, and the server's local trials do not beat.
    """
    key = (url, settings)
    if key not in _storages:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna; used on purpose
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            _storages[key] = open_storage(
                url, heartbeat_interval=settings.interval_s, grace_period=settings.grace_s
            )
    return _storages[key]


def close_heartbeat_storages() -> None:
    for storage in _storages.values():
        storage.engine.dispose()
    _storages.clear()


class Heartbeat:
    """Records a trial's heartbeat every interval while the `with` block runs."""

    def __init__(self, storage: optuna.storages.RDBStorage, trial_id: int) -> None:
        self._storage, self._trial_id = storage, trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        interval = self._storage.get_heartbeat_interval() or 10
        while True:
            # A database hiccup must not kill training: the next beat retries.
            with contextlib.suppress(Exception):
                self._storage.record_heartbeat(self._trial_id)
            if self._stop.wait(interval):
                return


def stale_trial_ids(storage: optuna.storages.RDBStorage, study_id: int) -> list[int]:
    """RUNNING trials whose last heartbeat is older than the grace period.

    Uses the same storage query as `optuna.storages.fail_stale_trials`.
    """
    ids: list[int] = storage._get_stale_trial_ids(study_id)
    return ids


def fail_stale_trials(study: optuna.Study, storage: optuna.storages.RDBStorage) -> list[int]:
    """Mark the study's stale trials FAIL, each with its reason; returns their numbers."""
    grace = storage.grace_period or 2 * (storage.get_heartbeat_interval() or 0)
    failed = []
    for trial_id in stale_trial_ids(storage, study._study_id):
        if _fail(storage, trial_id, STALE_REASON.format(grace=grace)):
            failed.append(storage.get_trial_number_from_id(trial_id))
    return failed


def _fail(storage: Any, trial_id: int, reason: str) -> bool:
    try:
        storage.set_trial_user_attr(trial_id, "fail_reason", reason)
        return bool(storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # another process finished it first
