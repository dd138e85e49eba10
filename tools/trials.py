"""Running trials: the ask -> train in a worker -> report/prune -> tell loop.

The process that runs this loop is the only writer of the study's storage:
workers never open it. Each of K slots asks Optuna for a trial, sends the
concrete params to a worker, answers its per-epoch reports with prune
decisions, and tells the outcome. Whatever ends a trial (success, pruning,
a crashed or hung worker, cancellation) it ends in a final state: no trial
is left RUNNING by a run that ends.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

import anyio
import optuna
import psutil
from pydantic import BaseModel, Field

from tools.errors import SeqtuneError
from tools.heartbeat import HeartbeatSettings, fail_stale_trials, heartbeat_storage
from tools.protocol import Decision, EpochReport, TrialJob, TrialResult
from tools.schemas import StudyConfig
from tools.search_space import check_enqueued, resolve_search_space, suggest_params
from tools.studies import ensure_prepared, load_study, study_names
from tools.workspace import Workspace

T = TypeVar("T")
STDERR_TAIL_CHARS = 4000
MAX_TRIALS = 10_000
MAX_TIMEOUT_S = 7 * 24 * 3600.0
OWNER_ATTR = "seqtune_owner"
# host:pid:start time (centiseconds), so a reused pid is not taken for the dead owner.
OWNER = f"{socket.gethostname()}:{os.getpid()}:{round(psutil.Process().create_time() * 100)}"


class TrialExecutor(Protocol):
    """Trains one trial somewhere and returns its result.

    Local workers send their epochs to `on_epoch`, which reports them to the
    study and answers with the pruner's decision. An executor whose workers
    report to the shared storage themselves (Dask) sets `reports_to_storage`;
    its `on_epoch` calls then only feed progress.
    """

    async def run_trial(
        self, job: TrialJob, on_epoch: Callable[[EpochReport], Awaitable[Decision]], threads: int
    ) -> TrialResult: ...

    def threads_for(self, n_workers: int) -> int: ...

    async def close_idle(self) -> None: ...


class TrialInfo(BaseModel):
    number: int
    state: str = Field(description="COMPLETE, PRUNED, FAIL or RUNNING.")
    value: float | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    epochs: int = 0
    seconds: float | None = None
    reason: str | None = Field(None, description="Why a trial failed or was pruned.")


@dataclass(frozen=True)
class RunPlan:
    n_trials: int | None = None
    timeout_s: float | None = None
    n_workers: int = 1
    enqueue: list[dict[str, Any]] = field(default_factory=list)
    max_consecutive_failures: int = 5
    max_retries: int = 0


@dataclass
class RunEvent:
    kind: Literal["started", "epoch", "finished"]
    trial: int
    message: str
    finished: int
    total: int | None
    progress: float  # finished trials plus the running trials' share of their epochs


@dataclass
class RunState:
    """Live view of a run, updated as trials progress (read by snapshots)."""

    trials: dict[int, TrialInfo] = field(default_factory=dict)
    finished: int = 0
    consecutive_failures: int = 0
    error: str | None = None
    best_value: float | None = None


async def _storage(call: Callable[[], T], limiter: anyio.CapacityLimiter) -> T:
    """Storage calls run in a thread, one at a time: this process is the single writer."""
    return await anyio.to_thread.run_sync(call, limiter=limiter)


class TrialRun:
    """One run of trials on one study (see module docstring)."""

    def __init__(
        self,
        ws: Workspace,
        study_name: str,
        executor: TrialExecutor,
        plan: RunPlan,
        on_event: Callable[[RunEvent], None] = lambda event: None,
    ) -> None:
        self.ws, self.study_name, self.executor, self.plan = ws, study_name, executor, plan
        self.on_event = on_event
        self.state = RunState()
        self._started = 0
        self._deadline = math.inf
        self._limiter = anyio.CapacityLimiter(1)
        self._context: tuple[Any, ...] | None = None
        self._max_epochs = 1
        self._remote = bool(getattr(executor, "reports_to_storage", False))

    async def prepare(self) -> None:
        """Open the study and check the plan; errors surface here, before any trial starts."""
        self._context = await _storage(self._open, self._limiter)

    def _open(self) -> tuple[Any, ...]:
        study, config = load_study(self.ws, self.study_name, resume=True)
        self._max_epochs = config.max_epochs
        fail_orphaned_trials(study)
        fail_stale_trials(
            study, heartbeat_storage(self.ws.storage_url, HeartbeatSettings.from_env())
        )
        space = resolve_search_space(config.search_space)
        for params in self.plan.enqueue:
            check_enqueued(params, space)
        data_dir = ensure_prepared(self.ws, self.study_name, config)
        for params in self.plan.enqueue:
            study.enqueue_trial(params, skip_if_exists=True)
        threads = self.executor.threads_for(self.plan.n_workers)
        return study, config, space, str(data_dir), threads

    async def run(self) -> RunState:
        if self._context is None:
            await self.prepare()
        assert self._context is not None
        context = self._context
        if self.plan.timeout_s is not None:
            self._deadline = time.monotonic() + self.plan.timeout_s
        async with anyio.create_task_group() as tg:
            for _ in range(self.plan.n_workers):
                tg.start_soon(self._slot, context)
        return self.state

    def _budget_left(self) -> bool:
        if self.state.error is not None or time.monotonic() >= self._deadline:
            return False
        return self.plan.n_trials is None or self._started < self.plan.n_trials

    async def _slot(self, context: tuple[Any, ...]) -> None:
        while self._budget_left():
            self._started += 1
            await self._one_trial(*context)

    async def _one_trial(
        self, study: optuna.Study, config: Any, space: Any, data_dir: str, threads: int
    ) -> None:
        def ask() -> tuple[optuna.Trial, dict[str, Any]]:
            trial = study.ask()
            trial.set_user_attr(OWNER_ATTR, OWNER)
            return trial, suggest_params(trial, space)

        trial, params = await _storage(ask, self._limiter)
        info = TrialInfo(number=trial.number, state="RUNNING", params=params)
        self.state.trials[trial.number] = info
        self._emit("started", trial.number, f"trial {trial.number} started")
        job = trial_job(self.study_name, trial.number, params, data_dir, config)
        started = time.monotonic()
        try:
            result = await self.executor.run_trial(
                job, partial(self._on_epoch, trial, info, config.metric), threads
            )
        except BaseException as exc:
            cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
            reason = "cancelled" if cancelled else f"{type(exc).__name__}: {exc}"
            with anyio.CancelScope(shield=True):
                result = TrialResult(state="fail", reason=reason, epochs=info.epochs)
                await self._finish(study, trial, info, result, time.monotonic() - started)
            raise
        await self._finish(study, trial, info, result, time.monotonic() - started)

    async def _on_epoch(
        self, trial: optuna.Trial, info: TrialInfo, metric: str, report: EpochReport
    ) -> Decision:
        info.epochs = report.epoch + 1
        if self._remote:  # the worker reported it to the storage itself: progress only
            self._emit("epoch", trial.number, _epoch_message(trial.number, metric, report))
            return Decision()
        if not math.isfinite(report.value):
            return Decision()

        def report_and_decide() -> bool:
            trial.report(report.value, report.epoch)
            return bool(trial.should_prune())

        prune = await _storage(report_and_decide, self._limiter)
        self._emit("epoch", trial.number, _epoch_message(trial.number, metric, report))
        return Decision(prune=prune)

    async def _finish(
        self,
        study: optuna.Study,
        trial: optuna.Trial,
        info: TrialInfo,
        result: TrialResult,
        seconds: float,
    ) -> None:
        info.epochs = max(info.epochs, result.epochs)
        info.seconds = round(seconds, 3)
        info.reason = result.reason
        state = {
            "complete": optuna.trial.TrialState.COMPLETE,
            "pruned": optuna.trial.TrialState.PRUNED,
            "fail": optuna.trial.TrialState.FAIL,
        }[result.state]

        def tell() -> optuna.trial.FrozenTrial:
            try:
                record_outcome(trial, info, result)
            except optuna.exceptions.UpdateFinishedTrialError:  # another process ended it
                return study._storage.get_trial(trial._trial_id)  # its outcome stands
            value = result.value if state == optuna.trial.TrialState.COMPLETE else None
            frozen = study.tell(trial, value, state=state, skip_if_finished=True)
            if state == optuna.trial.TrialState.FAIL and result.reason != "cancelled":
                self._maybe_retry(study, frozen)
            return frozen

        frozen = await _storage(tell, self._limiter)
        info.value, info.state = frozen.value, frozen.state.name
        self._count(info, config_direction=study.direction)
        self._emit("finished", trial.number, self._finished_message(info))

    def _maybe_retry(self, study: optuna.Study, failed: optuna.trial.FrozenTrial) -> None:
        """Queue the failed trial's params again (it runs within the same trial budget)."""
        attempt = int(failed.user_attrs.get("retry_count", 0)) + 1
        if attempt > self.plan.max_retries or not self._budget_left():
            return  # no budget left: a queued retry would jump ahead of the next run's plan
        origin = int(failed.user_attrs.get("retry_of", failed.number))
        study.enqueue_trial(failed.params, user_attrs={"retry_of": origin, "retry_count": attempt})

    def _count(self, info: TrialInfo, config_direction: optuna.study.StudyDirection) -> None:
        self.state.finished += 1
        if info.state == "FAIL" and info.reason != "cancelled":
            self.state.consecutive_failures += 1
            if self.state.consecutive_failures >= self.plan.max_consecutive_failures:
                self.state.error = (
                    f"run stopped after {self.state.consecutive_failures} consecutive failed "
                    f"trials; last reason: {info.reason}"
                )
        elif info.state != "FAIL":
            self.state.consecutive_failures = 0
        if info.state == "COMPLETE" and info.value is not None:
            better = max if config_direction == optuna.study.StudyDirection.MAXIMIZE else min
            best = self.state.best_value
            self.state.best_value = info.value if best is None else better(best, info.value)

    def _finished_message(self, info: TrialInfo) -> str:
        total = self.plan.n_trials
        head = f"trial {info.number} " + (f"({self.state.finished}/{total}) " if total else "")
        verb = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}[info.state]
        detail = f"{verb} after {info.epochs} epochs"
        if info.value is not None:
            detail += f", value {info.value:.4f}"
        if info.state == "FAIL" and info.reason:
            detail += f" ({info.reason})"
        best = self.state.best_value
        return head + detail + (f"; best {best:.4f}" if best is not None else "")

    def _emit(self, kind: Literal["started", "epoch", "finished"], trial: int, msg: str) -> None:
        state = self.state
        running = [t.epochs for t in state.trials.values() if t.state == "RUNNING"]
        share = sum(running) / (self._max_epochs * max(1, self.plan.n_workers))
        progress = state.finished + min(share, 0.99)
        self.on_event(RunEvent(kind, trial, msg, state.finished, self.plan.n_trials, progress))


def trial_job(
    study_name: str, number: int, params: dict[str, Any], data_dir: str, config: StudyConfig
) -> TrialJob:
    """What a trainer needs for one trial; its seed is the study seed + the trial number."""
    return TrialJob(
        study_name=study_name,
        trial_number=number,
        params=params,
        data_dir=data_dir,
        metric=config.metric,
        direction=config.direction,
        max_epochs=config.max_epochs,
        patience=config.patience,
        seed=config.seed + number,
    )


def _epoch_message(number: int, metric: str, report: EpochReport) -> str:
    return f"trial {number} epoch {report.epoch + 1}: {metric} {report.value:.4f}"


def record_outcome(trial: optuna.Trial, info: TrialInfo, result: TrialResult) -> None:
    trial.set_user_attr("epochs", info.epochs)
    trial.set_user_attr("seconds", info.seconds)
    if result.best_epoch is not None:
        trial.set_user_attr("best_epoch", result.best_epoch)
    if result.timings:
        trial.set_user_attr("timings", {k: round(v, 4) for k, v in result.timings.items()})
    if result.reason:
        trial.set_user_attr("fail_reason", result.reason)
    if result.stderr_tail:
        trial.set_user_attr("stderr_tail", result.stderr_tail[-STDERR_TAIL_CHARS:])


def fail_orphaned_trials(study: optuna.Study) -> list[int]:
    """Trials left RUNNING by a seqtune process of this host that has died become FAIL.

    Trials owned by live processes (another server on the same storage) or by
    other hosts are left alone: only their owner can finish them.
    """
    host = socket.gethostname()
    orphans = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        owner_host, pid, started = _parse_owner(str(trial.user_attrs.get(OWNER_ATTR, "")))
        if owner_host != host or pid is None or _alive(pid, started):
            continue
        storage = study._storage
        reason = f"server process {pid} died while this trial was running"
        storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        orphans.append(trial.number)
    return orphans


def fail_orphans_in_all_studies(ws: Workspace) -> dict[str, list[int]]:
    """At server start: end what a killed seqtune process left RUNNING, in every study."""
    failed = {}
    for name in study_names(ws):
        try:
            study, _ = load_study(ws, name)
        except SeqtuneError:
            continue  # not a seqtune study: not ours to touch
        if orphans := fail_orphaned_trials(study):
            failed[name] = orphans
    return failed


def _parse_owner(owner: str) -> tuple[str, int | None, int | None]:
    parts = owner.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[1:]):
        return "", None, None
    started = int(parts[2]) if len(parts) == 3 else None
    return parts[0], int(parts[1]), started


def _alive(pid: int, started: int | None) -> bool:
    """The owner still runs: its pid exists and, when recorded, started at the same time."""
    if pid == os.getpid():
        return True
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(round(process.create_time() * 100) - started) <= 1
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
