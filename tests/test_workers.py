"""The worker pool, with the fake trainer in real worker subprocesses over the real pipes.

The fake trainer (tools/fake_trainer.py) draws learning curves instead of
training, and injects faults per trial number through SEQTUNE_FAKE_FAULTS
(passed to workers with `PoolSettings.env`).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from conftest import pid_alive, worker_processes

from server import workers as workers_module
from server.workers import PoolSettings, WorkerPool, available_cpus
from tools.protocol import Decision, EpochReport, TrialJob, TrialResult

pytestmark = pytest.mark.anyio


def fake(**kw: Any) -> PoolSettings:
    env = kw.pop("env", {})
    return PoolSettings(trainer="fake", pin_cpus=kw.pop("pin_cpus", False), env=env, **kw)


def job(number: int = 0, max_epochs: int = 4) -> TrialJob:
    return TrialJob(
        study_name="s",
        trial_number=number,
        params={"learning_rate": 3e-4, "lstm_units_1": 64},
        data_dir="/nonexistent",  # the fake trainer reads no data
        metric="val_accuracy",
        direction="maximize",
        max_epochs=max_epochs,
        patience=3,
        seed=42 + number,
    )


class Epochs:
    """Answers the worker's per-epoch reports and remembers them."""

    def __init__(self, prune_at: int | None = None) -> None:
        self.reports: list[EpochReport] = []
        self.prune_at = prune_at

    async def __call__(self, report: EpochReport) -> Decision:
        self.reports.append(report)
        return Decision(prune=report.epoch == self.prune_at)


async def run(pool: WorkerPool, number: int = 0, **kw: Any) -> TrialResult:
    return await pool.run_trial(job(number, **kw), Epochs(), threads=1)


# Trials over the pipe


async def test_a_trial_reports_every_epoch_and_completes() -> None:
    epochs = Epochs()
    async with WorkerPool(fake()) as pool:
        result = await pool.run_trial(job(max_epochs=6), epochs, threads=1)
    assert result.state == "complete" and result.epochs == 6
    assert [r.epoch for r in epochs.reports] == list(range(6))
    values = [r.value for r in epochs.reports]
    assert result.value == max(values) and result.best_epoch == values.index(max(values))
    assert all(r.metrics == {"val_accuracy": r.value} for r in epochs.reports)
    assert result.timings["trial_s"] > 0 and result.rss_mb and result.rss_mb > 1


async def test_a_prune_decision_stops_the_trial_at_that_epoch() -> None:
    epochs = Epochs(prune_at=2)
    async with WorkerPool(fake()) as pool:
        result = await pool.run_trial(job(max_epochs=10), epochs, threads=1)
    assert result.state == "pruned" and result.epochs == 3 and result.value is None
    assert len(epochs.reports) == 3


async def test_same_job_gives_the_same_curve() -> None:
    async with WorkerPool(fake()) as pool:
        first, second = Epochs(), Epochs()
        await pool.run_trial(job(3), first, threads=1)
        await pool.run_trial(job(3), second, threads=1)
    assert [r.value for r in first.reports] == [r.value for r in second.reports]


# Warm workers


async def test_a_worker_is_reused_across_trials() -> None:
    async with WorkerPool(fake()) as pool:
        pids = []
        for number in range(4):
            assert (await run(pool, number)).state == "complete"
            pids.append(pool.live_pids)
        assert pids == [pids[0]] * 4 and len(pids[0]) == 1
        assert pool._idle[0].trials_run == 4
        assert pool._idle[0].ready is not None and pool._idle[0].ready.trainer == "fake"


async def test_a_worker_is_recycled_after_max_trials_per_worker() -> None:
    async with WorkerPool(fake(max_trials_per_worker=2)) as pool:
        await run(pool, 0)
        (first,) = pool.live_pids
        await run(pool, 1)
        assert pool.live_pids == []  # recycled after its 2nd trial
        assert not pid_alive(first)
        await run(pool, 2)
        (second,) = pool.live_pids
        assert second != first
        await run(pool, 3)
        assert pool.live_pids == []


async def test_a_worker_is_replaced_after_a_crash() -> None:
    async with WorkerPool(fake(env={"SEQTUNE_FAKE_FAULTS": "crash:1"})) as pool:
        await run(pool, 0)
        (first,) = pool.live_pids
        crashed = await run(pool, 1)
        assert crashed.state == "fail"
        assert crashed.reason == f"worker {first} exited (code 3)"
        assert pool.live_pids == [] and not pid_alive(first)
        after = await run(pool, 2)
        assert after.state == "complete"
        (second,) = pool.live_pids
        assert second != first


async def test_a_worker_over_its_memory_limit_is_recycled_after_its_trial() -> None:
    async with WorkerPool(fake(max_rss_mb=5.0)) as pool:  # any python process is bigger
        result = await run(pool, 0, max_epochs=2)
        assert result.state == "complete" and (result.rss_mb or 0) > 5.0
        assert pool.live_pids == [] and worker_processes() == []


async def test_a_worker_far_over_its_memory_limit_is_killed_mid_trial() -> None:
    settings = fake(max_rss_mb=5.0, env={"SEQTUNE_FAKE_EPOCH_SECONDS": "0.05"})
    async with WorkerPool(settings) as pool:
        with anyio.fail_after(10):
            result = await run(pool, 0, max_epochs=200)
        assert result.state == "fail"
        assert re.fullmatch(
            r"worker used \d+ MB, over the 10 MB limit; lower batch_size or units, or raise "
            r"SEQTUNE_MAX_WORKER_RSS_MB",
            result.reason or "",
        ), result.reason
        assert pool.live_pids == [] and worker_processes() == []


async def test_a_hung_worker_is_killed_after_trial_timeout() -> None:
    async with WorkerPool(fake(trial_timeout_s=0.5, env={"SEQTUNE_FAKE_FAULTS": "hang:0"})) as pool:
        with anyio.fail_after(5):
            hung = await run(pool, 0)
        assert hung.state == "fail" and hung.reason == "trial timed out after 0.5 s"
        assert pool.live_pids == []
        assert worker_processes() == []
        assert (await run(pool, 1)).state == "complete"


async def test_a_raising_trainer_fails_the_trial_but_keeps_the_worker() -> None:
    async with WorkerPool(fake(env={"SEQTUNE_FAKE_FAULTS": "raise:0"})) as pool:
        failed = await run(pool, 0)
        assert failed.state == "fail"
        assert failed.reason == "RuntimeError: fake trainer asked to fail"
        (pid,) = pool.live_pids
        assert (await run(pool, 1)).state == "complete"
        assert pool.live_pids == [pid]  # the exception was caught in the worker
        await anyio.sleep(0.1)
        assert any("fake trainer asked to fail" in line for line in pool._idle[0].stderr_tail)


async def test_idle_workers_are_capped() -> None:
    async with WorkerPool(fake(max_idle_workers=1)) as pool:
        async with anyio.create_task_group() as tg:
            for number in range(3):
                tg.start_soon(run, pool, number)
        # three workers ran the concurrent trials; only one stays warm
        assert len(pool.live_pids) == 1
        assert [p.pid for p in worker_processes()] == pool.live_pids


async def test_a_worker_that_cannot_start_fails_the_trial_with_its_stderr() -> None:
    async with WorkerPool(PoolSettings(trainer="bogus", pin_cpus=False)) as pool:
        result = await run(pool, 0)
        assert pool.live_pids == [] and worker_processes() == []
    assert result.state == "fail"
    assert result.reason is not None and result.reason.startswith("worker failed to start")
    assert "exited (code 2)" in result.reason
    assert "invalid choice: 'bogus'" in (result.stderr_tail or "")  # argparse's complaint


async def test_a_raising_trainer_returns_its_traceback() -> None:
    async with WorkerPool(fake(env={"SEQTUNE_FAKE_FAULTS": "raise:0"})) as pool:
        result = await run(pool, 0)
    assert result.state == "fail"
    assert "Traceback" in (result.stderr_tail or "")
    assert "RuntimeError: fake trainer asked to fail" in (result.stderr_tail or "")


async def test_a_cancelled_trial_kills_its_worker() -> None:
    reports: list[EpochReport] = []
    async with WorkerPool(fake(env={"SEQTUNE_FAKE_EPOCH_SECONDS": "0.02"})) as pool:
        with anyio.fail_after(10), anyio.CancelScope() as scope:

            async def on_epoch(report: EpochReport) -> Decision:
                reports.append(report)
                if len(reports) == 3:
                    scope.cancel()  # cancelled while the worker waits for this answer
                return Decision()

            await pool.run_trial(job(max_epochs=200), on_epoch, threads=1)
        assert scope.cancelled_caught and len(reports) == 3
        assert pool.live_pids == [] and worker_processes() == []


def slow_python(tmp_path: Path, delay: float) -> str:
    script = tmp_path / "slow-python"
    script.write_text(f'#!/bin/sh\nsleep {delay}\nexec "{sys.executable}" "$@"\n')
    script.chmod(0o755)
    return str(script)


async def test_cancelling_while_a_worker_starts_leaves_no_process(tmp_path: Path) -> None:
    async with WorkerPool(fake(python=slow_python(tmp_path, 0.6))) as pool:
        with anyio.move_on_after(0.3):
            await run(pool, 0)
        await anyio.sleep(0.8)  # past the start delay: a leaked worker would be up by now
        assert worker_processes() == []
        assert pool.live_pids == []


# Cores and shutdown


def test_threads_for_splits_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    real = WorkerPool(fake())
    assert real.threads_for(1) == len(available_cpus()) >= 1
    monkeypatch.setattr(workers_module, "available_cpus", lambda: list(range(8)))
    pool = WorkerPool(fake())
    assert [pool.threads_for(n) for n in (1, 2, 3, 4, 8, 16)] == [8, 4, 2, 2, 1, 1]
    assert pool.threads_for(0) == 8


def needs_two_cpus() -> None:
    if len(available_cpus()) < 2:
        pytest.skip("needs at least 2 CPUs")


def affinities(pool: WorkerPool) -> list[frozenset[int]]:
    return [frozenset(psutil.Process(pid).cpu_affinity()) for pid in pool.live_pids]


async def test_pinned_workers_share_out_the_cores() -> None:
    """A worker started while another is busy is pinned to the cores the first does not use."""
    needs_two_cpus()
    settings = fake(pin_cpus=True, env={"SEQTUNE_FAKE_EPOCH_SECONDS": "0.05"})
    async with WorkerPool(settings) as pool:
        threads = pool.threads_for(2)
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.run_trial, job(0, max_epochs=12), Epochs(), threads)
            with anyio.fail_after(10):
                while not pool.live_pids:
                    await anyio.sleep(0.02)
            await anyio.sleep(0.2)  # the first worker is up and busy
            await pool.run_trial(job(1, max_epochs=2), Epochs(), threads)
        pinned = affinities(pool)
        assert len(pinned) == 2 and all(len(a) == threads for a in pinned)
        assert not pinned[0] & pinned[1]  # disjoint cores
        assert [w.ready.threads for w in pool._idle if w.ready] == [threads, threads]


async def test_workers_started_together_are_pinned_to_different_cores() -> None:
    needs_two_cpus()
    async with WorkerPool(fake(pin_cpus=True)) as pool:
        threads = pool.threads_for(2)
        async with anyio.create_task_group() as tg:
            for number in range(2):
                tg.start_soon(pool.run_trial, job(number), Epochs(), threads)
        pinned = affinities(pool)
        assert len(pinned) == 2 and all(len(a) == threads for a in pinned)
        assert not pinned[0] & pinned[1]


async def test_aclose_leaves_no_processes() -> None:
    async with WorkerPool(fake()) as pool:
        async with anyio.create_task_group() as tg:
            for number in range(3):
                tg.start_soon(run, pool, number)
        pids = pool.live_pids
        assert len(pids) == 3 and all(pid_alive(p) for p in pids)
        await pool.aclose()
        assert pool.live_pids == []
        assert not any(pid_alive(p) for p in pids)
    assert worker_processes() == []


async def test_close_idle_stops_only_the_idle_workers() -> None:
    async with WorkerPool(fake(env={"SEQTUNE_FAKE_EPOCH_SECONDS": "0.03"})) as pool:
        busy: list[TrialResult] = []

        async def long_trial() -> None:
            busy.append(await pool.run_trial(job(0, max_epochs=15), Epochs(), 1))

        async with anyio.create_task_group() as tg:
            tg.start_soon(long_trial)
            with anyio.fail_after(10):
                while not pool.live_pids:
                    await anyio.sleep(0.02)
            (busy_pid,) = pool.live_pids
            await run(pool, 1, max_epochs=1)  # a second worker, idle afterwards
            (idle_pid,) = set(pool.live_pids) - {busy_pid}
            await pool.close_idle()
            assert pool.live_pids == [busy_pid] and not pid_alive(idle_pid)
        assert busy[0].state == "complete"  # the busy worker was left to finish


def test_worker_exits_when_its_stdin_closes() -> None:
    """`python -m tools.worker` alone: ready line on stdout, clean exit on EOF."""
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "tools.worker", "--trainer", "fake"],
        input=b"",
        capture_output=True,
        timeout=20,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith(b'{"type": "ready"')
