"""The same tools and guarantees with the study in PostgreSQL (`--storage postgresql://...`).

A real PostgreSQL server (SEQTUNE_TEST_POSTGRES_URL; .ci/postgres.sh starts one),
a fresh database per test. Runs use the fake trainer in real worker processes;
the stdio tests start `seqtune serve` as a subprocess with the `mcp` client.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import stored_trials, write_small_npz
from mcp import Client
from test_app_tools import call, create, error, make_server

from tests.stdio_client import REPO, server_processes, stdio_server
from tests.stdio_client import call as stdio_call
from tests.test_stdio_lifecycle import wait_gone, workers_of
from tools.workspace import Workspace

pytestmark = pytest.mark.anyio
SLOW_FAKE = {"SEQTUNE_FAKE_EPOCH_SECONDS": "0.1"}


async def test_every_step_works_on_postgres(pg_ws: Workspace, pg_small_npz: str) -> None:
    async with Client(make_server(pg_ws)) as client:
        summary = await create(
            client, max_epochs=6, pruner={"name": "median", "n_startup_trials": 2}
        )
        assert summary["storage"].startswith("postgresql") and ":***@" in summary["storage"]
        assert (
            await create(client, max_epochs=6, pruner={"name": "median", "n_startup_trials": 2})
            == summary
        )
        run = await call(client, "run_trials", study_name="s", n_trials=8, n_workers=2, wait_s=60)
        assert run["state"] == "completed" and run["finished"] == 8
        assert run["counts"]["RUNNING"] == 0 and run["counts"]["COMPLETE"] >= 1
        best = await call(client, "best_params", study_name="s")
        assert best["best_value"] == run["best_value"] and best["params"]
        listing = await call(client, "list_trials", study_name="s", order="best", limit=3)
        assert listing["trials"][0]["number"] == best["best_trial"]
        studies = await call(client, "list_studies")
        assert [s["study_name"] for s in studies["studies"]] == ["s"]
        password = pg_ws.storage_url.split(":")[2].split("@")[0]
        assert password and f":{password}@" not in studies["storage"]
        resource = await client.read_resource("seqtune://studies/s")
        assert '"n_trials": 8' in resource.contents[0].text  # type: ignore[union-attr]
        assert "did you mean 's'" in await error(client, "best_params", study_name="ss")
        deleted = await call(client, "delete_study", study_name="s")
        assert ":***@" in deleted["removed"][0]
        assert (await call(client, "list_studies"))["studies"] == []
    assert not pg_ws.study_dir("s").exists()


@pytest.mark.slow
async def test_server_killed_mid_run_on_postgres_loses_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    ws = tmp_path / "ws"
    storage = ("--storage", postgres_url, "--trainer", "fake")
    async with stdio_server(ws, *storage, env=SLOW_FAKE) as client:
        await stdio_call(client, "create_study", study_name="s", max_epochs=8)
        report = await stdio_call(
            client, "run_trials", study_name="s", n_trials=500, n_workers=2, wait_s=4
        )
        assert report["state"] == "running" and report["finished"] >= 2
        (server,) = server_processes()
        workers = [w.pid for w in workers_of(server)]
        before = {
            t.number: (t.state, t.value, t.intermediate_values)
            for t in stored_trials(postgres_url)
            if t.state.is_finished()
        }
        os.kill(server.pid, signal.SIGKILL)
        assert wait_gone([server.pid, *workers], seconds=10) == [], "workers outlived the server"
    running = [t.number for t in stored_trials(postgres_url) if t.state.name == "RUNNING"]
    assert len(running) == 2

    async with stdio_server(ws, *storage) as client:
        failed = await stdio_call(client, "list_trials", study_name="s", states=["FAIL"])
        reasons = {t["number"]: t["reason"] for t in failed["trials"]}
        assert all(f"server process {server.pid} died" in reasons[n] for n in running)
        after = {
            t.number: (t.state, t.value, t.intermediate_values) for t in stored_trials(postgres_url)
        }
        assert {n: after[n] for n in before} == before
        resumed = await stdio_call(client, "run_trials", study_name="s", n_trials=3, wait_s=120)
        assert resumed["state"] == "completed" and resumed["counts"]["RUNNING"] == 0


@pytest.mark.slow
async def test_two_servers_share_one_postgres_study(tmp_path: Path, postgres_url: str) -> None:
    ws = [tmp_path / "a", tmp_path / "b"]
    flags = ("--storage", postgres_url, "--trainer", "fake")
    for folder in ws:  # each server prepares the study's data in its own workspace
        write_small_npz(folder / "d.npz")
    async with (
        stdio_server(ws[0], *flags, env=SLOW_FAKE) as first,
        stdio_server(ws[1], *flags, env=SLOW_FAKE) as second,
    ):
        await stdio_call(
            first, "create_study", study_name="s", dataset="d.npz", max_epochs=4, pruner="none"
        )
        reports: list[dict[str, Any]] = []

        async def run(client: Any) -> None:
            reports.append(
                await stdio_call(
                    client, "run_trials", study_name="s", n_trials=6, n_workers=2, wait_s=300
                )
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, first)
            tg.start_soon(run, second)
        best = await stdio_call(second, "best_params", study_name="s")
    assert [r["state"] for r in reports] == ["completed", "completed"]
    trials = stored_trials(postgres_url)
    assert sorted(t.number for t in trials) == list(range(12))
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert best["counts"]["COMPLETE"] == 12


def test_unreachable_storage_stops_the_server_with_a_clear_message(tmp_path: Path) -> None:
    url = "postgresql://someone:secret@127.0.0.1:1/nothing"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--workspace",
            str(tmp_path),
            "--storage",
            url,
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 2
    assert "cannot open the storage postgresql://someone:***@127.0.0.1:1/nothing" in done.stderr
    assert "secret" not in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
