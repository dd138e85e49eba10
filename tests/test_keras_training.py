"""Real Keras training inside real worker processes (small: a few epochs of a 16-unit BiLSTM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

from server.workers import PoolSettings, WorkerPool
from tools.protocol import Decision, EpochReport
from tools.studies import StudyRequest, create_study, load_study
from tools.trials import RunPlan, TrialRun
from tools.workspace import Workspace

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SPACE: dict[str, Any] = {
    "lstm_units_1": [16],
    "use_second_lstm": False,
    "dense_units": [16],
    "batch_size": [64],
}


def make_study(root: Path, name: str = "k") -> Workspace:
    ws = Workspace(root)
    create_study(
        ws, StudyRequest(study_name=name, max_epochs=3, patience=3, seed=11, search_space=SPACE)
    )
    return ws


async def run(ws: Workspace, plan: RunPlan, pool: WorkerPool, name: str = "k") -> TrialRun:
    trial_run = TrialRun(ws, name, pool, plan)
    await trial_run.run()
    return trial_run


def outcomes(ws: Workspace, name: str = "k") -> list[tuple[str, dict[str, Any], float | None]]:
    study, _ = load_study(ws, name)
    return [(t.state.name, t.params, t.value) for t in study.trials]


async def test_same_seeded_config_gives_identical_trials(tmp_path: Path) -> None:
    results = []
    async with WorkerPool(PoolSettings()) as pool:
        for copy in ("a", "b"):
            ws = make_study(tmp_path / copy)
            await run(ws, RunPlan(n_trials=3, n_workers=1), pool)
            results.append(outcomes(ws))
    assert results[0] == results[1]
    assert all(state == "COMPLETE" for state, _, _ in results[0])
    assert len({value for _, _, value in results[0]}) > 1, "trials should differ"


async def test_objective_never_reads_the_test_split(tmp_path: Path) -> None:
    ws = make_study(tmp_path / "ws")
    (ws.data_dir("k") / "test.npz").unlink()
    async with WorkerPool(PoolSettings()) as pool:
        trial_run = await run(ws, RunPlan(n_trials=1), pool)
    assert [t.state for t in trial_run.state.trials.values()] == ["COMPLETE"]


async def test_killed_worker_fails_its_trial_and_the_run_goes_on(tmp_path: Path) -> None:
    ws = make_study(tmp_path / "ws")
    killed: list[int] = []
    async with WorkerPool(PoolSettings()) as pool:
        original = pool.run_trial

        async def kill_first_trial(job: Any, on_epoch: Any, threads: int) -> Any:
            async def on_epoch_then_kill(report: EpochReport) -> Decision:
                if job.trial_number == 0 and not killed:
                    (worker,) = pool._live
                    os.kill(worker.pid, signal.SIGKILL)
                    killed.append(worker.pid)
                return await on_epoch(report)

            return await original(job, on_epoch_then_kill, threads)

        pool.run_trial = kill_first_trial  # type: ignore[method-assign]
        await run(ws, RunPlan(n_trials=3, n_workers=1), pool)
    study, _ = load_study(ws, "k")
    states = [t.state for t in study.trials]
    assert states[0] == optuna.trial.TrialState.FAIL
    assert "exited" in study.trials[0].user_attrs["fail_reason"]
    assert states[1:] == [optuna.trial.TrialState.COMPLETE] * 2
    assert killed


def test_server_side_modules_never_import_tensorflow() -> None:
    modules = [
        "server.app",
        "server.cli",
        "server.demo",
        "server.manual",
        "tools.studies",
        "tools.trials",
        "tools.results",
        "tools.retrain",
        "tools.predict",
        "tools.data",
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
