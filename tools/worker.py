"""Entry point of a worker process: `python -m tools.worker --trainer keras`.

The worker imports its trainer once (TensorFlow for `keras`: ~5 s) and then
runs trials sent by the server, one at a time, until told to shut down or
until its stdin closes. It also exits by itself when the server process
dies, so a killed server never leaves orphan workers behind.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from functools import partial
from typing import IO, Any

import psutil

from tools.protocol import Decision, EpochReport, Ready, TrialJob, TrialResult, decode, encode

TrialRunner = Callable[[TrialJob, Callable[[EpochReport], Decision]], TrialResult]
TaskRunner = Callable[[dict[str, Any], Callable[[dict[str, Any]], None]], dict[str, Any]]


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    protocol_out = _claim_stdout()
    _watch_parent(os.getppid())
    _pin_cpus(args.cpus, args.threads)
    started = time.perf_counter()
    runner, stop_exc, tasks = load_trainer(args.trainer, args.threads)
    ready = Ready(
        pid=os.getpid(),
        trainer=args.trainer,
        import_seconds=time.perf_counter() - started,
        threads=args.threads,
    )
    _send(protocol_out, "ready", ready)
    _serve(runner, stop_exc, tasks, sys.stdin.buffer, protocol_out)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.worker")
    parser.add_argument("--trainer", choices=["keras", "fake"], default="keras")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cpus", default="", help="comma-separated CPU ids to pin to")
    return parser.parse_args(argv)


def _claim_stdout() -> IO[bytes]:
    """Keep the real stdout for the protocol; anything else printed goes to stderr."""
    protocol_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return protocol_out


def _watch_parent(parent_pid: int) -> None:
    """Exit at once if the server dies (we are re-parented): no orphan workers."""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(70)
            time.sleep(0.5)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _pin_cpus(cpus: str, threads: int) -> None:
    """Pin before any library starts its thread pools, so K workers share the cores."""
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def load_trainer(
    name: str, threads: int
) -> tuple[TrialRunner, type[BaseException], dict[str, TaskRunner]]:
    if name == "fake":
        from tools import fake_trainer

        return fake_trainer.run_trial, _NeverRaised, {}
    from tools import final_training, objective

    objective.configure_tensorflow(threads)
    return objective.run_trial, objective.StopRequested, final_training.TASKS


class _NeverRaised(Exception):
    pass


def _send(out: IO[bytes], kind: str, payload: Any = None) -> None:
    out.write(encode(kind, payload))


def _serve(
    runner: TrialRunner,
    stop_exc: type[BaseException],
    tasks: dict[str, TaskRunner],
    inp: IO[bytes],
    out: IO[bytes],
) -> None:
    def ask_server(report: EpochReport) -> Decision:
        _send(out, "epoch", report)
        line = inp.readline()
        if not line:
            os._exit(0)  # server gone mid-trial
        kind, body = decode(line)
        return Decision.model_validate(body) if kind == "decision" else Decision(stop=True)

    for line in iter(inp.readline, b""):
        kind, body = decode(line)
        if kind == "shutdown":
            return
        if kind == "trial":
            job = TrialJob.model_validate(body["job"])
            _send(out, "result", run_guarded(runner, stop_exc, job, ask_server))
        elif kind == "task":
            progress = partial(_send, out, "progress")
            _send(out, "task_result", _run_task(tasks, body["kind"], body["job"], progress))


def run_guarded(
    runner: TrialRunner,
    stop_exc: type[BaseException],
    job: TrialJob,
    ask_server: Callable[[EpochReport], Decision],
) -> TrialResult:
    started = time.perf_counter()
    try:
        result = runner(job, ask_server)
    except stop_exc:
        result = TrialResult(state="fail", reason="cancelled")
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        result = TrialResult(state="fail", reason=f"{type(exc).__name__}: {exc}")
    result.timings["trial_s"] = time.perf_counter() - started
    result.rss_mb = _rss_mb()
    return result


def _run_task(
    tasks: dict[str, TaskRunner],
    kind: str,
    job: dict[str, Any],
    progress: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Retrain or predict; failures come back as a message, not a dead worker."""
    if kind not in tasks:
        return {
            "ok": False,
            "error": f"'{kind}' needs real training; this server runs the fake trainer "
            "(restart it without --trainer fake)",
        }
    try:
        return {"ok": True, "result": tasks[kind](job, progress)}
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


if __name__ == "__main__":
    main()
