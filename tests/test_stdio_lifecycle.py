"""Runs that outlive a call, cancellation and shutdown, over stdio against `seqtune serve`.

These use the fake trainer (`--trainer fake`: real worker processes and pipes,
learning curves drawn instead of trained, 0.1 s per epoch) so a run lasts long
enough to be caught in the middle.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import anyio
import optuna
import psutil
import pytest

from tests.stdio_client import call, server_processes, stdio_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
SLOW_FAKE = {"SEQTUNE_FAKE_EPOCH_SECONDS": "0.1"}


def workers_of(server: psutil.Process) -> list[psutil.Process]:
    return [p for p in server.children(recursive=True) if "tools.worker" in p.cmdline()]


def running_trials(ws: Path, study: str) -> int:
    loaded = optuna.load_study(study_name=study, storage=f"sqlite:///{ws / 'seqtune.db'}")
    return sum(t.state == optuna.trial.TrialState.RUNNING for t in loaded.trials)


def wait_gone(pids: list[int], seconds: float = 15) -> list[int]:
    deadline = time.monotonic() + seconds
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [
            p
            for p in alive
            if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        ]
        time.sleep(0.1)
    return alive


async def test_snapshot_then_poll_then_cancel(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    async with stdio_server(ws, "--trainer", "fake", env=SLOW_FAKE) as client:
        await call(client, "create_study", study_name="s", max_epochs=10)
        short = await call(
            client, "run_trials", study_name="s", n_trials=4, n_workers=2, wait_s=0.5
        )
        assert short["state"] == "running"
        polled = await call(client, "get_run", run_id=short["run_id"], wait_s=120)
        assert polled["state"] == "completed" and polled["finished"] == 4

        long = await call(client, "run_trials", study_name="s", n_trials=200, n_workers=2, wait_s=1)
        assert long["state"] == "running"
        (server,) = server_processes()
        assert len(workers_of(server)) == 2
        cancelled = await call(client, "cancel_run", run_id=long["run_id"])
        assert cancelled["state"] == "cancelled"
        assert cancelled["counts"]["RUNNING"] == 0
        assert any(t["reason"] == "cancelled" for t in cancelled["new_trials"])
        assert workers_of(server) == []
        assert running_trials(ws, "s") == 0


async def test_client_cancelling_run_trials_cancels_the_run(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    async with stdio_server(ws, "--trainer", "fake", env=SLOW_FAKE) as client:
        await call(client, "create_study", study_name="s", max_epochs=10)
        with anyio.move_on_after(2):
            await client.call_tool(
                "run_trials", {"study_name": "s", "n_trials": 200, "wait_s": 600}
            )
        await anyio.sleep(1)
        assert running_trials(ws, "s") == 0
        # Not busy any more: a new run starts at once.
        again = await call(client, "run_trials", study_name="s", n_trials=1, wait_s=60)
        assert again["state"] == "completed"


@pytest.mark.parametrize("how", ["sigterm", "stdin_closed"])
async def test_shutdown_mid_run_ends_trials_and_workers(tmp_path: Path, how: str) -> None:
    ws = tmp_path / "ws"
    async with stdio_server(ws, "--trainer", "fake", env=SLOW_FAKE) as client:
        await call(client, "create_study", study_name="s", max_epochs=10)
        report = await call(
            client, "run_trials", study_name="s", n_trials=200, n_workers=2, wait_s=1
        )
        assert report["state"] == "running"
        (server,) = server_processes()
        pids = [server.pid] + [w.pid for w in workers_of(server)]
        assert len(pids) == 3
        if how == "sigterm":
            os.kill(server.pid, signal.SIGTERM)
            assert wait_gone(pids) == []
    assert wait_gone(pids) == []
    assert running_trials(ws, "s") == 0
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{ws / 'seqtune.db'}")
    reasons = {t.user_attrs.get("fail_reason") for t in study.trials if t.state.name == "FAIL"}
    assert reasons == {"cancelled"}
