"""Background runs: trial runs that outlive the tool call that started them.

MCP clients give up on a long call, so `run_trials` waits a bounded time and
then returns a snapshot while the run goes on in the server's task group.
`get_run` polls it, `cancel_run` stops it. A run that ends for any reason
(done, budget, failures, cancelled, server shutdown) leaves no trial RUNNING.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectSendStream
from pydantic import BaseModel, Field

from tools.errors import RunNotFound, StudyBusy
from tools.search_space import effective_params
from tools.studies import best_trial_or_none, count_states, load_study
from tools.trials import RunEvent, RunPlan, TrialExecutor, TrialInfo, TrialRun
from tools.workspace import Workspace

log = logging.getLogger(__name__)

RunStateName = Literal["running", "completed", "cancelled", "failed"]
ProgressSink = Callable[[RunEvent], Awaitable[None]]


class RunReport(BaseModel):
    """A run's state: its new trials, the study's counts, and the best so far."""

    run_id: str
    study_name: str
    state: RunStateName
    n_trials: int | None = Field(description="Trials requested (None: until timeout_s).")
    timeout_s: float | None
    n_workers: int
    executor: str = Field(description="'local' worker processes or the 'dask' cluster.")
    elapsed_s: float
    finished: int = Field(description="Trials of this run that reached a final state.")
    counts: dict[str, int] = Field(description="All trials of the study, by state.")
    new_trials: list[TrialInfo]
    best_value: float | None
    best_trial: int | None
    best_params: dict[str, Any] | None
    error: str | None = None
    message: str


@dataclass
class Run:
    id: str
    study_name: str
    plan: RunPlan
    trial_run: TrialRun
    executor: TrialExecutor
    executor_name: str = "local"
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    state: RunStateName = "running"
    error: str | None = None
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)
    listeners: set[MemoryObjectSendStream[RunEvent]] = field(default_factory=set)

    def publish(self, event: RunEvent) -> None:
        for stream in list(self.listeners):
            # A slow or gone listener must never stall the run.
            with suppress(anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                stream.send_nowait(event)


class RunManager:
    """Starts, tracks, waits on and cancels runs; lives as long as the server."""

    def __init__(self, ws: Workspace, tg: anyio.abc.TaskGroup) -> None:
        self.ws, self._tg = ws, tg
        self.runs: dict[str, Run] = {}
        self._starting: set[str] = set()

    def active_on(self, study_name: str) -> Run | None:
        return next(
            (r for r in self.runs.values() if r.study_name == study_name and r.state == "running"),
            None,
        )

    def ensure_idle(self, study_name: str) -> None:
        """Raise StudyBusy while a run is active or starting on the study."""
        busy = self.active_on(study_name)
        if busy is not None:
            raise StudyBusy(
                f"run {busy.id} is already running on study '{study_name}'; wait for it with "
                f"get_run('{busy.id}') or stop it with cancel_run('{busy.id}')"
            )
        if study_name in self._starting:
            raise StudyBusy(
                f"a run is already running on study '{study_name}' (it is starting); wait "
                "for it with get_run, or stop it with cancel_run"
            )

    async def start(
        self, study_name: str, plan: RunPlan, executor: TrialExecutor, executor_name: str = "local"
    ) -> Run:
        """Check and open the study now (errors raise here), then run in the background."""
        self.ensure_idle(study_name)
        run_id = uuid.uuid4().hex[:12]
        run: Run | None = None

        def on_event(event: RunEvent) -> None:
            if run is not None:
                run.publish(event)

        trial_run = TrialRun(self.ws, study_name, executor, plan, on_event)
        self._starting.add(study_name)  # held across the await: one run per study
        try:
            await trial_run.prepare()
        finally:
            self._starting.discard(study_name)
        run = Run(run_id, study_name, plan, trial_run, executor, executor_name)
        self.runs[run_id] = run
        self._tg.start_soon(self._drive, run)
        return run

    async def _drive(self, run: Run) -> None:
        with run.scope:
            try:
                state = await run.trial_run.run()
                run.error = state.error
                run.state = "failed" if state.error else "completed"
            except Exception as exc:  # a bug must end the run visibly, not silently
                log.exception("run %s crashed", run.id)
                run.error, run.state = f"internal error: {type(exc).__name__}", "failed"
        if run.scope.cancel_called:
            run.state = "cancelled"
        run.ended = time.monotonic()
        for stream in list(run.listeners):
            stream.close()
        run.done.set()
        log.info("run %s on '%s' ended: %s", run.id, run.study_name, run.state)

    def get(self, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            known = ", ".join(f"{r.id} ({r.study_name}, {r.state})" for r in self.runs.values())
            raise RunNotFound(
                f"run '{run_id}' not found in this server"
                + (f"; known runs: {known}" if known else "; no runs were started since it began")
                + " (run ids live as long as the server; list_trials shows every trial)"
            )
        return run

    async def wait(self, run: Run, wait_s: float, sink: ProgressSink | None = None) -> None:
        """Wait up to `wait_s` for the run to end, passing its events to `sink`."""
        send, receive = anyio.create_memory_object_stream[RunEvent](math.inf)
        if run.done.is_set():
            send.close()
        else:
            run.listeners.add(send)
        with anyio.move_on_after(wait_s):
            async with receive:
                async for event in receive:
                    if sink is not None:
                        await sink(event)
        run.listeners.discard(send)
        send.close()

    async def cancel(self, run: Run) -> None:
        """Stop the run now; its trials' workers are killed and idle ones released."""
        run.scope.cancel()
        with anyio.CancelScope(shield=True):
            await run.done.wait()
            await run.executor.close_idle()

    async def shutdown(self) -> None:
        """Cancel every active run; each ends its trials as FAIL 'cancelled'."""
        with anyio.CancelScope(shield=True):
            for run in list(self.runs.values()):
                if run.state == "running":
                    run.scope.cancel()
                    with anyio.move_on_after(30):
                        await run.done.wait()

    async def report(self, run: Run) -> RunReport:
        return await anyio.to_thread.run_sync(self._report, run)

    def _report(self, run: Run) -> RunReport:
        study, config = load_study(self.ws, run.study_name)
        trials = study.get_trials(deepcopy=False)
        best = best_trial_or_none(study)
        new = sorted(run.trial_run.state.trials.values(), key=lambda t: t.number)
        end = run.ended or time.monotonic()
        best_params = effective_params(best.params, config.search_space) if best else None
        return RunReport(
            run_id=run.id,
            study_name=run.study_name,
            state=run.state,
            n_trials=run.plan.n_trials,
            timeout_s=run.plan.timeout_s,
            n_workers=run.plan.n_workers,
            executor=run.executor_name,
            elapsed_s=round(end - run.started, 2),
            finished=run.trial_run.state.finished,
            counts=count_states(trials),
            new_trials=[t.model_copy() for t in new],
            best_value=best.value if best else None,
            best_trial=best.number if best else None,
            best_params=best_params,
            error=run.error,
            message=_message(run, best.value if best else None),
        )


def _message(run: Run, best: float | None) -> str:
    finished = run.trial_run.state.finished
    best_text = f"; best value {best:.4f}" if best is not None else ""
    if run.state == "running":
        return (
            f"run {run.id} still running ({finished} trials finished{best_text}); poll with "
            f"get_run(run_id='{run.id}') or stop with cancel_run(run_id='{run.id}')"
        )
    if run.state == "failed":
        return f"run {run.id} failed after {finished} trials: {run.error}"
    return f"run {run.id} {run.state}: {finished} trials finished{best_text}"
