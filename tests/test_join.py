"""`seqtune worker`: processes that join a study on the shared PostgreSQL storage.

Real PostgreSQL, real `seqtune worker` subprocesses (fake trainer: real
`study.optimize` with heartbeats, drawn learning curves), real signals.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from conftest import stored_trials, write_small_npz

from server.workers import PoolSettings, WorkerPool
from tests.stdio_client import REPO
from tools.remote import CLAIM_ATTR
from tools.studies import StudyRequest, create_study
from tools.trials import RunPlan, TrialRun
from tools.workspace import Workspace

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def worker_command(ws: Workspace, other: Path, *extra: str) -> list[str]:
    """`seqtune worker s` as another machine would run it: its own workspace, its own data."""
    return [
        sys.executable,
        "-m",
        "server.cli",
        "worker",
        "s",
        "--storage",
        ws.storage_url,
        "--workspace",
        str(other),
        "--data-root",
        str(other),
        "--trainer",
        "fake",
        *extra,
    ]


def worker_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


@pytest.fixture
def study(pg_ws: Workspace, tmp_path: Path) -> Path:
    """Study 's' on PostgreSQL; returns the other machine's folder, holding its copy of d.npz."""
    write_small_npz(pg_ws.root / "d.npz")
    create_study(pg_ws, StudyRequest(study_name="s", dataset="d.npz", max_epochs=5))
    other = tmp_path / "other-machine"
    write_small_npz(other / "d.npz")  # same seed: the same bytes
    return other


async def test_joined_worker_trains_beside_the_server(pg_ws: Workspace, study: Path) -> None:
    joined = subprocess.Popen(
        worker_command(pg_ws, study, "--trials", "4"),
        env=worker_env(SEQTUNE_FAKE_EPOCH_SECONDS="0.05"),
        stdout=subprocess.PIPE,
        text=True,
    )
    async with WorkerPool(PoolSettings(trainer="fake")) as pool:
        await TrialRun(pg_ws, "s", pool, RunPlan(n_trials=6, n_workers=2)).run()
    out, _ = joined.communicate(timeout=120)
    assert joined.returncode == 0
    report = json.loads(out[out.index("{") :])
    assert len(report["trials"]) == 4 and sum(report["counts"].values()) == 4
    trials = stored_trials(pg_ws.storage_url)
    assert sorted(t.number for t in trials) == list(range(10))
    assert all(t.state.is_finished() for t in trials)
    mine = [t for t in trials if t.user_attrs.get(CLAIM_ATTR) == report["worker"]]
    assert sorted(t.number for t in mine) == sorted(t["number"] for t in report["trials"])
    assert all(t.intermediate_values and t.user_attrs["epochs"] >= 1 for t in mine)


async def test_killed_worker_trial_fails_when_its_heartbeat_is_stale(
    pg_ws: Workspace, study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    beats = {"SEQTUNE_HEARTBEAT_S": "1", "SEQTUNE_HEARTBEAT_GRACE_S": "3"}
    for name, value in beats.items():
        monkeypatch.setenv(name, value)
    joined = subprocess.Popen(
        worker_command(pg_ws, study, "--trials", "1"),
        env=worker_env(SEQTUNE_FAKE_EPOCH_SECONDS="1", **beats),
        stdout=subprocess.DEVNULL,
    )
    with anyio.fail_after(60):
        while not [t for t in stored_trials(pg_ws.storage_url) if t.intermediate_values]:
            await anyio.sleep(0.2)
    joined.kill()
    joined.wait()
    (left,) = stored_trials(pg_ws.storage_url)
    assert left.state.name == "RUNNING"
    await anyio.sleep(4.5)  # past the grace period
    await TrialRun(pg_ws, "s", NoTraining(), RunPlan(n_trials=1)).prepare()
    (failed,) = stored_trials(pg_ws.storage_url)
    assert failed.state.name == "FAIL"
    assert "no heartbeat for 3 s" in failed.user_attrs["fail_reason"]


async def test_sigterm_fails_the_running_trial_and_exits(pg_ws: Workspace, study: Path) -> None:
    joined = subprocess.Popen(
        worker_command(pg_ws, study, "--trials", "3"),
        env=worker_env(SEQTUNE_FAKE_EPOCH_SECONDS="1"),
        stdout=subprocess.PIPE,
        text=True,
    )
    with anyio.fail_after(60):
        while not [t for t in stored_trials(pg_ws.storage_url) if t.intermediate_values]:
            await anyio.sleep(0.2)
    began = time.monotonic()
    joined.send_signal(signal.SIGTERM)
    out, _ = joined.communicate(timeout=30)
    assert joined.returncode == 0 and time.monotonic() - began < 10
    assert json.loads(out[out.index("{") :])["counts"] == {}  # none finished before the stop
    states = [t.state.name for t in stored_trials(pg_ws.storage_url)]
    assert states == ["FAIL"]


def test_worker_refusals(pg_ws: Workspace, study: Path, tmp_path: Path) -> None:
    sqlite = subprocess.run(
        [*worker_command(pg_ws, study, "--trials", "1")[:6], "sqlite:///x.db", "--trials", "1"],
        env=worker_env(),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert sqlite.returncode == 1 and "PostgreSQL storage" in sqlite.stderr
    write_small_npz(study / "d.npz", seed=1)  # another file under the same name
    changed = subprocess.run(
        worker_command(pg_ws, study, "--trials", "1"),
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert changed.returncode == 1 and "sha256 differs" in changed.stderr
    assert stored_trials(pg_ws.storage_url) == []


class NoTraining:
    """An executor that is never asked to train: the test only opens the run."""

    def threads_for(self, n_workers: int) -> int:
        return 1
