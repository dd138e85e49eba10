"""Warm worker processes that train trials for the server.

A worker imports its trainer (TensorFlow) once and then runs many trials,
each in a fresh Keras session. The pool hands workers to runs, keeps idle
ones warm for the next run, and replaces a worker that crashed, hung,
outgrew its memory limit or reached its trial quota. The server never
imports TensorFlow: it only talks to workers over pipes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.abc
import psutil
from anyio.streams.buffered import BufferedByteReceiveStream

from tools.errors import TrainingFailed, WorkerCrashed
from tools.protocol import Decision, EpochReport, Ready, TrialJob, TrialResult, decode, encode

log = logging.getLogger(__name__)

EpochHandler = Callable[[EpochReport], Awaitable[Decision]]
ProgressHandler = Callable[[dict[str, Any]], Awaitable[None]]
_MAX_LINE = 16 * 2**20
_STDERR_TAIL_LINES = 40
# Between trials a worker above max_rss_mb is recycled; during a trial, one above
# twice that is killed before it takes the machine down.
HARD_LIMIT_FACTOR = 2.0
MEMORY_POLL_S = 0.5
T = TypeVar("T")


@dataclass(frozen=True)
class PoolSettings:
    trainer: str = "keras"
    pin_cpus: bool = False
    max_trials_per_worker: int = 100
    max_rss_mb: float = 3072.0
    trial_timeout_s: float = 3600.0
    start_timeout_s: float = 300.0
    max_idle_workers: int = 4
    python: str = sys.executable
    env: dict[str, str] = field(default_factory=dict)


def available_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


class WorkerStartFailed(WorkerCrashed):
    def __init__(self, message: str, stderr_tail: str) -> None:
        super().__init__(message)
        self.stderr_tail = stderr_tail or None


class Worker:
    """One worker process and its two pipes."""

    def __init__(self, process: anyio.abc.Process, threads: int, cpus: tuple[int, ...]) -> None:
        assert process.stdout is not None and process.stdin is not None
        self.process = process
        self.threads = threads
        self.cpus = cpus
        self.trials_run = 0
        self.ready: Ready | None = None
        self.last_rss_mb = 0.0
        self.stderr_tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self.kill_reason: str | None = None
        self._stdout = BufferedByteReceiveStream(process.stdout)

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self) -> str:
        return "\n".join(self.stderr_tail)

    async def read_message(self) -> tuple[str, dict[str, object]]:
        try:
            line = await self._stdout.receive_until(b"\n", _MAX_LINE)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError) as exc:
            code = await self._exit_code()
            raise WorkerCrashed(f"worker {self.pid} exited (code {code})") from exc
        return decode(line)

    async def send(self, kind: str, payload: object = None) -> None:
        assert self.process.stdin is not None
        try:
            await self.process.stdin.send(encode(kind, payload))  # type: ignore[arg-type]
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            code = await self._exit_code()
            raise WorkerCrashed(f"worker {self.pid} exited (code {code})") from exc

    async def run(self, job: TrialJob, on_epoch: EpochHandler) -> TrialResult:
        await self.send("trial", {"job": job.model_dump(mode="json")})
        while True:
            kind, body = await self.read_message()
            if kind == "epoch":
                decision = await on_epoch(EpochReport.model_validate(body))
                await self.send("decision", decision)
            elif kind == "result":
                self.trials_run += 1
                result = TrialResult.model_validate(body)
                self.last_rss_mb = result.rss_mb or 0.0
                return result
            else:
                raise WorkerCrashed(f"worker {self.pid} sent an unexpected '{kind}' message")

    async def run_task(self, kind: str, job: dict[str, Any], on_progress: ProgressHandler) -> Any:
        await self.send("task", {"kind": kind, "job": job})
        while True:
            message, body = await self.read_message()
            if message == "progress":
                await on_progress(body)
            elif message == "task_result":
                self.trials_run += 1
                if not body.get("ok"):
                    raise TrainingFailed(f"{kind} failed in the worker: {body.get('error')}")
                return body["result"]
            else:
                raise WorkerCrashed(f"worker {self.pid} sent an unexpected '{message}' message")

    async def _exit_code(self) -> int | None:
        with anyio.move_on_after(2):
            return await self.process.wait()
        return self.process.returncode

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await self.process.wait()

    async def shutdown(self) -> None:
        """Ask politely, then kill: a busy or stuck worker must not delay shutdown."""
        with anyio.CancelScope(shield=True):
            try:
                with anyio.move_on_after(3):
                    await self.send("shutdown")
                    await self.process.wait()
            except WorkerCrashed:
                pass
            await self.kill()


class WorkerPool:
    """Hands out warm workers; use inside `async with` so stderr readers have a home."""

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self._idle: list[Worker] = []
        self._live: set[Worker] = set()
        self._tg: anyio.abc.TaskGroup | None = None
        self._cpus = available_cpus()
        self._starting: list[tuple[int, ...]] = []

    async def __aenter__(self) -> WorkerPool:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)

    @property
    def live_pids(self) -> list[int]:
        return sorted(w.pid for w in self._live)

    def threads_for(self, n_workers: int) -> int:
        """Each of K concurrent workers gets an equal share of the cores."""
        return max(1, len(self._cpus) // max(1, n_workers))

    async def aclose(self) -> None:
        workers = list(self._live)
        self._idle.clear()
        for worker in workers:
            await worker.shutdown()
            self._live.discard(worker)

    async def close_idle(self) -> None:
        """Stop the warm idle workers (after a cancel: the user asked to free the machine)."""
        idle, self._idle = self._idle, []
        for worker in idle:
            await worker.shutdown()
            self._live.discard(worker)

    async def run_trial(self, job: TrialJob, on_epoch: EpochHandler, threads: int) -> TrialResult:
        """Run one trial on a warm worker; crashes and timeouts become FAIL results."""
        try:
            worker = await self._acquire(threads)
        except WorkerStartFailed as exc:
            return TrialResult(state="fail", reason=str(exc), stderr_tail=exc.stderr_tail)
        try:
            with anyio.fail_after(self.settings.trial_timeout_s):
                result = await self._watched(worker, worker.run(job, on_epoch))
        except TimeoutError:
            await self._discard(worker)
            return self._failure(
                worker, f"trial timed out after {self.settings.trial_timeout_s:g} s"
            )
        except WorkerCrashed as exc:
            await self._discard(worker)
            return self._failure(worker, worker.kill_reason or str(exc))
        except BaseException:
            await self._discard(worker)  # cancelled: the trial's worker must stop now
            raise
        if result.state == "fail" and not result.stderr_tail:
            await anyio.sleep(0.05)  # let the stderr reader catch the traceback
            result.stderr_tail = worker.tail() or None
        await self._release(worker)
        return result

    async def _watched(self, worker: Worker, work: Awaitable[T]) -> T:
        """Await `work` while a watchdog kills the worker if its memory passes the hard limit."""
        error: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_memory, worker)
            try:
                result = await work
            except Exception as exc:  # re-raised below, not wrapped in an ExceptionGroup
                error = exc
            finally:
                tg.cancel_scope.cancel()
        if error is not None:
            raise error
        return result

    async def _watch_memory(self, worker: Worker) -> None:
        limit = self.settings.max_rss_mb * HARD_LIMIT_FACTOR
        while True:
            await anyio.sleep(MEMORY_POLL_S)
            try:
                rss = psutil.Process(worker.pid).memory_info().rss / 2**20
            except psutil.Error:
                return
            if rss > limit:
                worker.kill_reason = (
                    f"worker used {rss:.0f} MB, over the {limit:.0f} MB limit; lower "
                    "batch_size or units, or raise SEQTUNE_MAX_WORKER_RSS_MB"
                )
                await worker.kill()
                return

    async def run_task(
        self, kind: str, job: dict[str, Any], on_progress: ProgressHandler, threads: int
    ) -> Any:
        """Run a retrain/predict task on a warm worker; a crash or timeout raises WorkerCrashed."""
        try:
            worker = await self._acquire(threads)
        except WorkerStartFailed as exc:
            raise WorkerCrashed(f"{exc}; stderr tail:\n{exc.stderr_tail}") from exc
        try:
            with anyio.fail_after(self.settings.trial_timeout_s):
                result = await worker.run_task(kind, job, on_progress)
        except TimeoutError:
            await self._discard(worker)
            raise WorkerCrashed(
                f"{kind} timed out after {self.settings.trial_timeout_s:g} s"
            ) from None
        except WorkerCrashed as exc:
            await self._discard(worker)
            raise WorkerCrashed(f"{exc}; stderr tail:\n{worker.tail()}") from exc
        except TrainingFailed:
            await self._release(worker)
            raise
        except BaseException:
            await self._discard(worker)
            raise
        await self._release(worker)
        return result

    def _failure(self, worker: Worker, reason: str) -> TrialResult:
        log.warning("%s; stderr tail:\n%s", reason, worker.tail())
        return TrialResult(state="fail", reason=reason, stderr_tail=worker.tail())

    async def _acquire(self, threads: int) -> Worker:
        for worker in self._idle:
            if worker.threads == threads:
                self._idle.remove(worker)
                return worker
        return await self._spawn(threads)

    async def _release(self, worker: Worker) -> None:
        s = self.settings
        worn_out = worker.trials_run >= s.max_trials_per_worker
        too_big = worker.last_rss_mb > s.max_rss_mb
        if worn_out or too_big or len(self._idle) >= s.max_idle_workers:
            log.info(
                "recycling worker %s (trials=%d, rss=%.0f MB)",
                worker.pid,
                worker.trials_run,
                worker.last_rss_mb,
            )
            await worker.shutdown()
            self._live.discard(worker)
        else:
            self._idle.append(worker)

    async def _discard(self, worker: Worker) -> None:
        with anyio.CancelScope(shield=True):
            await worker.kill()
            await anyio.sleep(0.05)  # let the stderr reader drain the last lines
        self._live.discard(worker)

    def _pick_cpus(self, threads: int) -> tuple[int, ...]:
        if not self.settings.pin_cpus or threads >= len(self._cpus):
            return ()
        load = {cpu: 0 for cpu in self._cpus}
        taken = [w.cpus for w in self._live] + self._starting
        for cpus in taken:
            for cpu in cpus:
                load[cpu] += 1
        return tuple(sorted(sorted(load, key=lambda c: (load[c], c))[:threads]))

    async def _spawn(self, threads: int) -> Worker:
        assert self._tg is not None, "use WorkerPool inside 'async with'"
        cpus = self._pick_cpus(threads)
        command = [
            self.settings.python,
            "-m",
            "tools.worker",
            "--trainer",
            self.settings.trainer,
            "--threads",
            str(threads),
            "--cpus",
            ",".join(map(str, cpus)),
        ]
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONUNBUFFERED": "1",
            "TF_FORCE_GPU_ALLOW_GROWTH": "true",
            **self.settings.env,
        }
        self._starting.append(cpus)  # so workers started together take different cores
        try:
            process = await anyio.open_process(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        finally:
            self._starting.remove(cpus)
        worker = Worker(process, threads, cpus)
        self._live.add(worker)
        self._tg.start_soon(_collect_stderr, worker)
        try:
            with anyio.fail_after(self.settings.start_timeout_s):
                kind, body = await worker.read_message()
            if kind != "ready":
                raise WorkerCrashed(f"expected 'ready', got '{kind}'")
        except BaseException as exc:
            await self._discard(worker)  # also when cancelled: a half-started worker must go
            if not isinstance(exc, TimeoutError | WorkerCrashed):
                raise
            raise WorkerStartFailed(
                f"worker failed to start ({exc or 'timed out'})", worker.tail()
            ) from exc
        worker.ready = Ready.model_validate(body)
        log.info(
            "worker %s ready (%s, %d threads, cpus=%s, import %.1f s)",
            worker.pid,
            worker.ready.trainer,
            threads,
            cpus or "all",
            worker.ready.import_seconds,
        )
        return worker


async def _collect_stderr(worker: Worker) -> None:
    stream = worker.process.stderr
    assert stream is not None
    buffered = BufferedByteReceiveStream(stream)
    while True:
        try:
            line = await buffered.receive_until(b"\n", _MAX_LINE)
        except (
            anyio.EndOfStream,
            anyio.IncompleteRead,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
        ):
            return
        text = line.decode(errors="replace").rstrip()
        if text:
            worker.stderr_tail.append(text)
            log.debug("worker %s: %s", worker.pid, text)
