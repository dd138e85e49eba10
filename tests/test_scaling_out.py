"""The README's "Scaling out" steps, followed one by one, with real Keras training.

1. the database: CI starts a real PostgreSQL server (.ci/postgres.sh); the test
   takes a fresh database on it;
2. `dask scheduler --port P`, 3. two `dask worker tcp://...:P --nthreads 1`
   processes (the plain Dask CLI; see bench.dask_scaling.dask_cluster);
4. `seqtune serve --storage postgresql://... --dask-scheduler tcp://...:P`, driven
   over stdio by the `mcp` client: create_study, then run_trials(executor="dask").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import stored_trials, write_small_npz

from bench.dask_scaling import dask_cluster
from tests.stdio_client import call, stdio_server
from tools.remote import CLAIM_ATTR

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
pytest.importorskip("distributed")

TINY_SPACE = {"lstm_units_1": [16], "use_second_lstm": False, "dense_units": [16]}


async def test_the_readme_scaling_out_steps(tmp_path: Path, postgres_url: str) -> None:
    workspace = tmp_path / "ws"
    write_small_npz(workspace / "walks.npz")
    async with dask_cluster(tmp_path / "dask", n_workers=2) as scheduler:
        flags = ("--storage", postgres_url, "--dask-scheduler", scheduler)
        async with stdio_server(workspace, *flags) as client:
            created = await call(
                client,
                "create_study",
                study_name="walks-v1",
                dataset="walks.npz",
                max_epochs=3,
                pruner={"name": "median", "n_startup_trials": 1},
                search_space=TINY_SPACE,
            )
            assert created["storage"].startswith("postgresql")
            report = await call(
                client,
                "run_trials",
                study_name="walks-v1",
                n_trials=4,
                executor="dask",
                wait_s=600,
            )
            best = await call(client, "best_params", study_name="walks-v1")
    assert report["state"] == "completed" and report["executor"] == "dask"
    assert report["n_workers"] == 2 and report["counts"]["FAIL"] == 0
    assert report["counts"]["RUNNING"] == 0 and report["finished"] == 4
    assert best["best_trial"] == report["best_trial"]
    trials = stored_trials(postgres_url, "walks-v1")
    assert len({t.user_attrs[CLAIM_ATTR] for t in trials}) == 2, "both machines trained"
    assert all(t.intermediate_values for t in trials)
