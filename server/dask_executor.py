"""Trials placed on a Dask cluster: other machines, one shared RDB storage.

The server keeps its role: it asks for each trial and tells its outcome, so
a Dask run has the same budget, retries, failure counts and report as a
local one. In between, a Dask worker trains the trial and reports its
epochs straight to the storage (`tools.remote`); the server watches the
storage for progress and heartbeats, and the Dask future for the outcome.

A lost machine ends its trial FAIL by whichever comes first: Dask noticing
the worker is gone (its rescheduled task then refuses the claimed trial),
or the trial's heartbeat going stale.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from tools.errors import InvalidConfig, SeqtuneError
from tools.heartbeat import STALE_REASON, HeartbeatSettings, heartbeat_storage, stale_trial_ids
from tools.protocol import Decision, EpochReport, TrialJob, TrialResult
from tools.remote import (
    CLAIM_ATTR,
    TRAINING_FILES,
    RemoteSpec,
    read_training_files,
    run_remote_trial,
)
from tools.workspace import Workspace

log = logging.getLogger(__name__)
WATCH_S = 2.0
CONNECT_TIMEOUT_S = 10


class ExecutorUnavailable(SeqtuneError):
    """The Dask scheduler cannot be reached, or has no workers."""


class DaskExecutor:
    """Runs trials on the Dask cluster at `address` (see module docstring)."""

    reports_to_storage = True

    def __init__(
        self,
        address: str,
        ws: Workspace,
        trainer: str,
        trial_timeout_s: float,
        heartbeat: HeartbeatSettings,
    ) -> None:
        if ws.is_sqlite:
            raise InvalidConfig(
                "executor 'dask' needs a storage that every machine reaches and writes at once; "
                "an SQLite file is not safe for that: start the server with "
                "--storage postgresql://user:password@host/db"
            )
        self.address, self.ws, self.trainer = address, ws, trainer
        self.trial_timeout_s = trial_timeout_s
        self.heartbeat = heartbeat
        self._client: Any = None
        self._waits = anyio.CapacityLimiter(256)
        self._watch_storage: Any = None
        self._files: dict[str, tuple[tuple[int, ...], dict[str, bytes]]] = {}

    async def connect(self) -> int:
        """Connect (once) and check the cluster; returns its total worker threads."""
        return await anyio.to_thread.run_sync(self._connect)

    def _connect(self) -> int:
        if self._client is None:
            try:
                from distributed import Client
            except ImportError:
                raise ExecutorUnavailable(
                    "executor 'dask' needs the 'distributed' package: "
                    "pip install 'seqtune[cluster]'"
                ) from None
            try:
                self._client = Client(self.address, timeout=CONNECT_TIMEOUT_S)  # type: ignore[no-untyped-call]
            except (OSError, TimeoutError) as exc:
                raise ExecutorUnavailable(
                    f"cannot reach the Dask scheduler at {self.address} ({exc}); start it with "
                    "`dask scheduler` or fix --dask-scheduler"
                ) from None
            self._watch_storage = heartbeat_storage(self.ws.storage_url, self.heartbeat)
        try:
            workers = self._client.scheduler_info(n_workers=-1)["workers"]
        except (OSError, TimeoutError) as exc:
            raise ExecutorUnavailable(
                f"lost the Dask scheduler at {self.address} ({exc}); is it still running?"
            ) from None
        if not workers:
            raise ExecutorUnavailable(
                f"no Dask workers are connected to {self.address}; start one per machine (or "
                f"per GPU) with `dask worker {self.address} --nthreads 1`"
            )
        return sum(int(w["nthreads"]) for w in workers.values())

    def threads_for(self, n_workers: int) -> int:
        return 1  # unused: each remote worker sizes its own thread pools

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await anyio.to_thread.run_sync(client.close)

    async def close_idle(self) -> None:
        """Remote workers stay up: they belong to the cluster, not to this server."""

    async def run_trial(
        self, job: TrialJob, on_epoch: Callable[[EpochReport], Awaitable[Decision]], threads: int
    ) -> TrialResult:
        if self._client is None:
            await self.connect()
        files = await anyio.to_thread.run_sync(self._training_files, job.data_dir)
        spec = RemoteSpec(
            storage_url=self.ws.storage_url,
            trainer=self.trainer,
            heartbeat_s=self.heartbeat.interval_s,
            heartbeat_grace_s=self.heartbeat.grace_s,
        )
        future = self._client.submit(
            run_remote_trial,
            job.model_dump(mode="json"),
            spec.model_dump(mode="json"),
            files,
            key=f"seqtune-{job.study_name}-trial-{job.trial_number}-{uuid.uuid4().hex[:8]}",
            pure=False,
        )
        try:
            return await self._outcome(future, job, on_epoch)
        finally:
            if not future.done():
                future.cancel()  # the worker stops at its next epoch: the trial has ended

    async def _outcome(
        self, future: Any, job: TrialJob, on_epoch: Callable[[EpochReport], Awaitable[Decision]]
    ) -> TrialResult:
        deadline = time.monotonic() + self.trial_timeout_s
        reported = -1
        while not await self._wait_done(future, WATCH_S):
            if time.monotonic() >= deadline:
                return TrialResult(
                    state="fail", reason=f"trial timed out after {self.trial_timeout_s:g} s"
                )
            values, stale_worker = await anyio.to_thread.run_sync(self._watch, job)
            for epoch in sorted(e for e in values if e > reported):
                await on_epoch(EpochReport(epoch=epoch, value=values[epoch]))
                reported = epoch
            if stale_worker is not None:
                await anyio.to_thread.run_sync(self._evict, stale_worker)
                reason = STALE_REASON.format(grace=self.heartbeat.grace_s)
                return TrialResult(
                    state="fail", epochs=reported + 1, reason=f"{reason}: {stale_worker}"
                )
        return await anyio.to_thread.run_sync(_result_of, future, reported + 1)

    async def _wait_done(self, future: Any, timeout: float) -> bool:
        """Wait up to `timeout` for the task to end; True once it has (no polling delay)."""
        from distributed import wait

        def waited() -> bool:
            with contextlib.suppress(TimeoutError):
                wait([future], timeout=timeout)  # type: ignore[no-untyped-call]
            return bool(future.done())

        # A thread per running trial, outside the default limiter the storage calls use.
        return await anyio.to_thread.run_sync(waited, limiter=self._waits, abandon_on_cancel=True)

    def _watch(self, job: TrialJob) -> tuple[dict[int, float], str | None]:
        """The trial's reported epochs (for progress) and, if its heartbeat went stale,
        the worker that was training it."""
        storage = self._watch_storage
        study_id = storage.get_study_id_from_name(job.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, job.trial_number)
        trial = storage.get_trial(trial_id)
        values = {
            int(k): float(v) for k, v in trial.intermediate_values.items() if math.isfinite(v)
        }
        if trial_id not in stale_trial_ids(storage, study_id):
            return values, None
        return values, str(trial.user_attrs.get(CLAIM_ATTR, "unknown worker"))

    def _evict(self, worker: str) -> None:
        """Remove a frozen worker from the cluster, so no later trial is queued on it.

        Dask itself would only notice after its worker TTL (minutes); should
        the worker wake up, it registers again as a fresh worker.
        """
        if not worker.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
            return

        async def remove(dask_scheduler: Any) -> None:
            await dask_scheduler.remove_worker(worker, stimulus_id="seqtune-stale-heartbeat")

        try:
            self._client.run_on_scheduler(remove)
            log.warning("removed Dask worker %s from the cluster: its heartbeat went stale", worker)
        except Exception as exc:  # already gone, or the scheduler is unreachable
            log.warning("could not remove stale Dask worker %s: %r", worker, exc)

    def _training_files(self, data_dir: str) -> dict[str, bytes]:
        """The training files, read once per content, sent along with every task.

        Not scattered: Dask keeps one copy of scattered data (its memory
        manager drops replicas), so losing that worker would cancel every
        task waiting on it. Prepared splits are small next to a trial's cost,
        and each worker keeps them on disk by content (tools.remote).
        """
        stamp = tuple((Path(data_dir) / name).stat().st_mtime_ns for name in TRAINING_FILES)
        known = self._files.get(data_dir)
        if known is None or known[0] != stamp:
            self._files[data_dir] = (stamp, read_training_files(Path(data_dir)))
        return self._files[data_dir][1]


def _result_of(future: Any, epochs: int) -> TrialResult:
    try:
        return TrialResult.model_validate(future.result())
    except Exception as exc:  # the worker was lost, the task raised, or the scheduler went away
        log.warning("dask task %s failed: %r", future.key, exc)
        return TrialResult(state="fail", epochs=epochs, reason=f"dask: {type(exc).__name__}: {exc}")
