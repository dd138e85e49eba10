"""Faults injected for real: killed servers and workers, memory blow-up, two servers on one
SQLite file, a crash during retrain. Nothing finished may be lost; no trial stays RUNNING.

Tuning here uses the fake trainer (real worker processes and pipes, drawn learning curves);
the retrain crash uses real Keras.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import optuna
import pytest

from server.workers import PoolSettings, WorkerPool
from tests.stdio_client import call, server_processes, stdio_server
from tests.test_stdio_lifecycle import wait_gone, workers_of
from tools.errors import WorkerCrashed
from tools.retrain import RetrainRequest, retrain_and_evaluate
from tools.studies import StudyRequest, create_study, load_study
from tools.trials import RunPlan, TrialRun
from tools.workspace import Workspace

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
SLOW_FAKE = {"SEQTUNE_FAKE_EPOCH_SECONDS": "0.1"}


def snapshot(storage: str, study: str) -> dict[int, tuple[str, float | None, dict[int, float]]]:
    """Finished trials with their values and intermediate values."""
    loaded = optuna.load_study(study_name=study, storage=storage)
    return {
        t.number: (t.state.name, t.value, dict(t.intermediate_values))
        for t in loaded.trials
        if t.state.is_finished()
    }


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as connection:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])


async def test_server_killed_mid_run_loses_nothing_and_resumes(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    storage = f"sqlite:///{ws / 'seqtune.db'}"
    async with stdio_server(ws, "--trainer", "fake", env=SLOW_FAKE) as client:
        await call(client, "create_study", study_name="s", max_epochs=8)
        report = await call(
            client, "run_trials", study_name="s", n_trials=500, n_workers=2, wait_s=4
        )
        assert report["state"] == "running" and report["finished"] >= 2
        (server,) = server_processes()
        workers = [w.pid for w in workers_of(server)]
        before = snapshot(storage, "s")
        os.kill(server.pid, signal.SIGKILL)
        assert wait_gone([server.pid, *workers], seconds=10) == [], "workers outlived the server"
    assert integrity(ws / "seqtune.db") == "ok"
    stale = [
        t
        for t in optuna.load_study(study_name="s", storage=storage).trials
        if t.state == optuna.trial.TrialState.RUNNING
    ]
    assert len(stale) == 2

    async with stdio_server(ws, "--trainer", "fake") as client:
        failed = await call(client, "list_trials", study_name="s", states=["FAIL"])
        reasons = {t["number"]: t["reason"] for t in failed["trials"]}
        for trial in stale:
            assert f"server process {server.pid} died" in reasons[trial.number]
        after = snapshot(storage, "s")
        assert {n: after[n] for n in before} == before
        resumed = await call(client, "run_trials", study_name="s", n_trials=3, wait_s=120)
        assert resumed["state"] == "completed" and resumed["counts"]["RUNNING"] == 0
    assert integrity(ws / "seqtune.db") == "ok"


async def test_two_servers_share_one_sqlite_study(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    logs = [tmp_path / "a.stderr", tmp_path / "b.stderr"]
    reads = 0
    async with (
        stdio_server(ws, "--trainer", "fake", errlog=logs[0], env=SLOW_FAKE) as first,
        stdio_server(ws, "--trainer", "fake", errlog=logs[1], env=SLOW_FAKE) as second,
    ):
        await call(first, "create_study", study_name="s", max_epochs=4, pruner="none")
        reports: list[dict[str, Any]] = []

        async def run(client: Any) -> None:
            reports.append(
                await call(
                    client, "run_trials", study_name="s", n_trials=8, n_workers=2, wait_s=300
                )
            )

        async def read_loop() -> None:
            nonlocal reads
            while len(reports) < 2:
                await call(second, "best_params", study_name="s")
                await call(first, "list_trials", study_name="s", limit=100)
                reads += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, first)
            tg.start_soon(run, second)
            tg.start_soon(read_loop)
    assert [r["state"] for r in reports] == ["completed", "completed"]
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{ws / 'seqtune.db'}")
    assert sorted(t.number for t in study.trials) == list(range(16))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert reads > 3
    for log in logs:
        assert "database is locked" not in log.read_text()
    assert integrity(ws / "seqtune.db") == "ok"


async def test_memory_blow_up_fails_the_trial_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQTUNE_FAKE_FAULTS", "leak:1")
    monkeypatch.setenv("SEQTUNE_FAKE_EPOCH_SECONDS", "0.2")
    ws = Workspace(tmp_path / "ws")
    create_study(ws, StudyRequest(study_name="s", max_epochs=30, pruner={"name": "none"}))
    async with WorkerPool(PoolSettings(trainer="fake", max_rss_mb=100)) as pool:
        await TrialRun(ws, "s", pool, RunPlan(n_trials=3)).run()
    study, _ = load_study(ws, "s")
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "FAIL", "COMPLETE"]
    assert "over the 200 MB limit" in study.trials[1].user_attrs["fail_reason"]


async def test_crashed_trials_are_retried_and_record_what_they_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQTUNE_FAKE_FAULTS", "crash:0")
    ws = Workspace(tmp_path / "ws")
    create_study(ws, StudyRequest(study_name="s", max_epochs=3))
    async with WorkerPool(PoolSettings(trainer="fake")) as pool:
        await TrialRun(ws, "s", pool, RunPlan(n_trials=3, max_retries=1)).run()
    study, _ = load_study(ws, "s")
    first, retry = study.trials[0], study.trials[1]
    assert first.state.name == "FAIL" and retry.state.name == "COMPLETE"
    assert retry.params == first.params
    assert retry.user_attrs["retry_of"] == 0 and retry.user_attrs["retry_count"] == 1


async def test_a_crash_during_retrain_keeps_the_previous_model(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    space = {
        "lstm_units_1": [16],
        "use_second_lstm": False,
        "dense_units": [16],
        "batch_size": [64],
    }
    create_study(ws, StudyRequest(study_name="s", max_epochs=2, search_space=space))
    async with WorkerPool(PoolSettings()) as pool:
        await TrialRun(ws, "s", pool, RunPlan(n_trials=1)).run()

        async def quiet(update: dict[str, Any]) -> None:
            return None

        first = await retrain_and_evaluate(
            ws, pool, RetrainRequest(study_name="s", max_epochs=3), quiet
        )
        saved = {name: Path(path).read_bytes() for name, path in first.artifacts.items()}

        async def kill_at_second_epoch(update: dict[str, Any]) -> None:
            if update.get("epoch") == 1:
                (worker,) = pool._live
                os.kill(worker.pid, signal.SIGKILL)

        with pytest.raises(WorkerCrashed, match="exited"):
            await retrain_and_evaluate(
                ws, pool, RetrainRequest(study_name="s", max_epochs=10), kill_at_second_epoch
            )
    assert {name: Path(path).read_bytes() for name, path in first.artifacts.items()} == saved
    final = ws.study_dir("s") / "final"
    leftovers = sorted(p.name for p in final.iterdir())
    assert leftovers == sorted(Path(p).name for p in first.artifacts.values())
    study, _ = load_study(ws, "s")
    assert study.user_attrs["seqtune_test_evaluations"] == 1


async def test_no_retry_is_queued_past_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQTUNE_FAKE_FAULTS", "crash:2")
    ws = Workspace(tmp_path / "ws")
    create_study(ws, StudyRequest(study_name="s", max_epochs=3))
    async with WorkerPool(PoolSettings(trainer="fake")) as pool:
        await TrialRun(ws, "s", pool, RunPlan(n_trials=3, max_retries=1)).run()
    study, _ = load_study(ws, "s")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "FAIL"]
