"""Trials on a Dask cluster with the study in PostgreSQL: `run_trials(executor="dask")`.

Real parts: a real PostgreSQL server (SEQTUNE_TEST_POSTGRES_URL), a real Dask
`LocalCluster` of 2 worker processes (each a real `distributed` nanny and
worker), the real MCP server through the in-memory client. Most tests train
with the fake trainer (tools/fake_trainer.py) inside the Dask workers, over
the same remote path as Keras; `test_real_keras_study_on_dask` trains real
BiLSTMs. Faults are real: Dask worker processes are SIGKILLed or frozen.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import anyio
import optuna
import psutil
import pytest
from conftest import stored_trials
from mcp import Client
from test_app_tools import call, create, error, make_server

from tools.remote import CLAIM_ATTR
from tools.workspace import Workspace

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
distributed = pytest.importorskip("distributed")


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A LocalCluster of 2 single-thread worker processes; they inherit the env set before."""
    monkeypatch.setenv(
        "SEQTUNE_FAKE_EPOCH_SECONDS", os.environ.get("SEQTUNE_FAKE_EPOCH_SECONDS", "0.05")
    )
    with local_cluster() as local:
        yield local


def local_cluster() -> Any:
    """2 worker processes of 1 thread each: one trial at a time per worker, as documented."""
    return distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )


def dask_server(ws: Workspace, cluster: Any, **kw: Any) -> Any:
    return make_server(ws, dask_scheduler=cluster.scheduler_address, **kw)


def trials_of(ws: Workspace, name: str = "s") -> list[optuna.trial.FrozenTrial]:
    return stored_trials(ws.storage_url, name)


def worker_pids(cluster: Any) -> dict[str, int]:
    with distributed.Client(cluster) as client:
        return dict(client.run(os.getpid))


async def running_trial_on_worker(ws: Workspace, timeout: float = 30) -> optuna.trial.FrozenTrial:
    """A RUNNING trial that a Dask worker has claimed and reported an epoch for."""
    with anyio.fail_after(timeout):
        while True:
            for trial in trials_of(ws):
                claimed = CLAIM_ATTR in trial.user_attrs and trial.intermediate_values
                if trial.state.name == "RUNNING" and claimed:
                    return trial
            await anyio.sleep(0.1)


async def test_dask_run_prunes_and_reports_like_a_local_run(
    pg_ws: Workspace, pg_small_npz: str, cluster: Any
) -> None:
    async with Client(dask_server(pg_ws, cluster)) as client:
        await create(client, max_epochs=8, pruner={"name": "median", "n_startup_trials": 2})
        local = await call(client, "run_trials", study_name="s", n_trials=2, wait_s=60)
        remote = await call(
            client, "run_trials", study_name="s", n_trials=8, executor="dask", wait_s=120
        )
    assert remote.keys() == local.keys()
    assert remote["state"] == "completed" and remote["executor"] == "dask"
    assert remote["n_workers"] == 2  # the cluster's worker threads
    assert remote["finished"] == 8 and len(remote["new_trials"]) == 8
    assert remote["counts"]["RUNNING"] == 0
    trials = [t for t in trials_of(pg_ws) if t.number >= 2]
    states = {t.state.name for t in trials}
    assert "COMPLETE" in states and "PRUNED" in states, states
    workers = {t.user_attrs[CLAIM_ATTR].split(" ")[0] for t in trials}
    assert len(workers) == 2, "both Dask workers trained trials"
    for trial in trials:  # the workers reported every epoch straight to PostgreSQL
        assert len(trial.intermediate_values) == trial.user_attrs["epochs"]
    pruned = next(t for t in remote["new_trials"] if t["state"] == "PRUNED")
    assert 1 <= pruned["epochs"] < 8


async def test_killed_dask_worker_fails_its_trial_and_the_run_completes(
    pg_ws: Workspace, pg_small_npz: str, cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids = worker_pids(cluster)
    async with Client(dask_server(pg_ws, cluster)) as client:
        await create(client, max_epochs=20, pruner="none")
        started = await call(
            client, "run_trials", study_name="s", n_trials=4, executor="dask", wait_s=0
        )
        victim = await running_trial_on_worker(pg_ws)
        address = victim.user_attrs[CLAIM_ATTR].split(" ")[0]
        os.kill(pids[address], signal.SIGKILL)
        report = await call(client, "get_run", run_id=started["run_id"], wait_s=120)
    assert report["state"] == "completed"
    assert report["finished"] == 4 and report["counts"]["RUNNING"] == 0
    failed = [t for t in report["new_trials"] if t["state"] == "FAIL"]
    assert [t["number"] for t in failed] == [victim.number]
    assert "lost" in failed[0]["reason"] or "KilledWorker" in failed[0]["reason"]
    assert sum(t["state"] == "COMPLETE" for t in report["new_trials"]) == 3
    stored = {t.number: t for t in trials_of(pg_ws)}
    assert stored[victim.number].state.name == "FAIL"
    assert stored[victim.number].user_attrs["fail_reason"] == failed[0]["reason"]


async def test_frozen_machine_is_failed_by_its_stale_heartbeat(
    pg_ws: Workspace, pg_small_npz: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQTUNE_HEARTBEAT_S", "1")
    monkeypatch.setenv("SEQTUNE_HEARTBEAT_GRACE_S", "4")
    monkeypatch.setenv("SEQTUNE_FAKE_EPOCH_SECONDS", "0.1")
    from tools.heartbeat import HeartbeatSettings

    with local_cluster() as local:
        pids = worker_pids(local)
        server = dask_server(pg_ws, local, heartbeat=HeartbeatSettings(1, 4))
        frozen: psutil.Process | None = None
        try:
            async with Client(server) as client:
                await create(client, max_epochs=30, pruner="none")
                started = await call(
                    client, "run_trials", study_name="s", n_trials=3, executor="dask", wait_s=0
                )
                victim = await running_trial_on_worker(pg_ws)
                address = victim.user_attrs[CLAIM_ATTR].split(" ")[0]
                frozen = psutil.Process(pids[address])
                frozen.suspend()  # the machine hangs: no heartbeat, no Dask message
                began = time.monotonic()
                report = await call(client, "get_run", run_id=started["run_id"], wait_s=120)
        finally:
            if frozen is not None:
                frozen.kill()
    assert report["state"] == "completed", report
    assert report["counts"]["RUNNING"] == 0
    failed = [t for t in report["new_trials"] if t["state"] == "FAIL"]
    assert [t["number"] for t in failed] == [victim.number]
    assert "no heartbeat for 4 s" in failed[0]["reason"]
    assert sum(t["state"] == "COMPLETE" for t in report["new_trials"]) == 2
    assert time.monotonic() - began < 60


async def test_cancelled_dask_run_leaves_nothing_running(
    pg_ws: Workspace, pg_small_npz: str, cluster: Any
) -> None:
    async with Client(dask_server(pg_ws, cluster)) as client:
        await create(client, max_epochs=200, pruner="none")
        started = await call(
            client, "run_trials", study_name="s", n_trials=10, executor="dask", wait_s=0
        )
        await running_trial_on_worker(pg_ws)
        cancelled = await call(client, "cancel_run", run_id=started["run_id"])
    assert cancelled["state"] == "cancelled" and cancelled["counts"]["RUNNING"] == 0
    reasons = {t["reason"] for t in cancelled["new_trials"] if t["state"] == "FAIL"}
    assert reasons == {"cancelled"}
    # The remote workers see the trial ended at their next epoch and stop training.
    with distributed.Client(cluster) as dask_client, anyio.fail_after(10):
        while any(dask_client.processing().values()):
            await anyio.sleep(0.1)
    epochs = {t.number: len(t.intermediate_values) for t in trials_of(pg_ws)}
    assert max(epochs.values()) < 200


async def test_dask_executor_refusals_are_actionable(
    ws: Workspace, small_npz: str, pg_ws: Workspace, pg_small_npz: str
) -> None:
    async with Client(make_server(ws)) as client:
        await create(client)
        message = await error(client, "run_trials", study_name="s", executor="dask")
        assert "--dask-scheduler" in message
    async with Client(make_server(ws, dask_scheduler="tcp://127.0.0.1:9")) as client:
        message = await error(client, "run_trials", study_name="s", executor="dask")
        assert "SQLite" in message and "postgresql://" in message
    async with Client(make_server(pg_ws, dask_scheduler="tcp://127.0.0.1:9")) as client:
        await create(client)
        message = await error(client, "run_trials", study_name="s", executor="dask")
        assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in message
        assert trials_of(pg_ws) == []


async def test_real_keras_study_on_dask(
    pg_ws: Workspace, pg_small_npz: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real BiLSTMs trained in 2 Dask worker processes, pruned by the study's pruner."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with local_cluster() as local:
        server = dask_server(pg_ws, local, trainer="keras")
        async with Client(server) as client:
            await create(
                client,
                max_epochs=4,
                pruner={"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
                search_space={"lstm_units_1": [16], "use_second_lstm": False, "dense_units": [16]},
            )
            report = await call(
                client, "run_trials", study_name="s", n_trials=4, executor="dask", wait_s=600
            )
    assert report["state"] == "completed" and report["counts"]["RUNNING"] == 0
    assert report["counts"]["FAIL"] == 0, report["new_trials"]
    assert report["best_value"] is not None and 0 <= report["best_value"] <= 1
    trials = trials_of(pg_ws)
    assert all(t.intermediate_values for t in trials)
    timings = [t.user_attrs.get("timings", {}) for t in trials if t.state.name == "COMPLETE"]
    assert all(timing.get("fit_s", 0) > 0 for timing in timings)
