"""Benchmark 7: trials per hour on a Dask cluster of 1 and 2 workers, beside local workers.

The README's scale-out steps, on one machine: a PostgreSQL database, a
`dask scheduler` and `dask worker --nthreads 1` processes started with the
plain Dask CLI, and `seqtune serve --storage postgresql://... --dask-scheduler`
driven over stdio MCP. Every trial trains the same fixed configuration
(benchmark 2's), so trials are comparable; each setup warms its workers
before the timed run, in its own fresh database.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio

from bench.common import REPO, markdown_table, mean
from bench.mcp_driver import (
    BenchError,
    call,
    run_to_end,
    seqtune_server,
    stored_trials,
    trial_record,
)
from bench.postgres import fresh_database, server_url
from bench.scaling import FIXED_SPACE, SPEEDUP_TARGET, speedup_summary, study_arguments

NAME = "dask"
DASK = str(Path(sys.executable).with_name("dask"))


@dataclass(frozen=True)
class Setup:
    executor: str
    n_workers: int

    @property
    def label(self) -> str:
        workers = f"{self.n_workers} worker{'s' if self.n_workers > 1 else ''}"
        return f"dask, {workers}" if self.executor == "dask" else f"local, {workers}"


@dataclass(frozen=True)
class DaskConfig:
    n_trials: int = 10
    max_epochs: int = 4
    dataset: str = "builtin:gait"
    trainer: str = "keras"
    seed: int = 11
    setups: tuple[Setup, ...] = field(
        default_factory=lambda: (Setup("dask", 1), Setup("dask", 2), Setup("local", 2))
    )


CONFIGS = {
    "full": DaskConfig(),
    "quick": DaskConfig(n_trials=4, max_epochs=3),
    "smoke": DaskConfig(n_trials=2, max_epochs=1, trainer="fake"),
}


async def run(mode: str, scratch: Path, results_dir: Path) -> dict[str, Any]:
    config = CONFIGS[mode]
    server = await anyio.to_thread.run_sync(server_url)
    setups = []
    for i, setup in enumerate(config.setups):
        with fresh_database(server, prefix="seqtune_bench") as url:
            setups.append(await run_setup(config, setup, scratch / f"setup{i}", url))
    return {"config": asdict(config), **summarise(setups)}


async def run_setup(config: DaskConfig, setup: Setup, folder: Path, url: str) -> dict[str, Any]:
    workspace = folder / "ws"
    folder.mkdir(parents=True, exist_ok=True)
    async with dask_cluster(folder, setup.n_workers if setup.executor == "dask" else 0) as address:
        extra = ("--storage", url, "--dask-scheduler", address)
        env = {"SEQTUNE_FAKE_EPOCH_SECONDS": "0.01"}
        async with seqtune_server(workspace, trainer=config.trainer, env=env, extra=extra) as srv:
            await warm_up(srv.client, setup, config.dataset)
            await call(srv.client, "create_study", **study_arguments(config, "dask"))
            _, wall = await run_to_end(
                srv.client, "dask", config.n_trials, setup.n_workers, executor=setup.executor
            )
    trials = [trial_record(t) for t in stored_trials(workspace, "dask", storage=url)]
    return {
        "setup": asdict(setup),
        "label": setup.label,
        "wall_s": wall,
        "trials_per_hour": config.n_trials / wall * 3600,
        "mean_trial_wall_s": mean(t["wall_s"] for t in trials),
        "mean_fit_s": mean(t["timings"].get("fit_s", 0.0) for t in trials),
        "workers_used": len({t["worker"] for t in trials if t["worker"]}),
    }


async def warm_up(client: Any, setup: Setup, dataset: str) -> None:
    """One cheap trial per worker, so every worker has imported TensorFlow before the clock."""
    await call(
        client,
        "create_study",
        study_name="warmup",
        dataset=dataset,
        max_epochs=1,
        patience=1,
        pruner="none",
        search_space=FIXED_SPACE,
    )
    await run_to_end(client, "warmup", setup.n_workers, setup.n_workers, executor=setup.executor)


@asynccontextmanager
async def dask_cluster(folder: Path, n_workers: int) -> AsyncIterator[str]:
    """The README's commands: `dask scheduler --port P` and n x `dask worker ADDRESS
    --nthreads 1` (plus flags that keep a test machine quiet); yields the address."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = (folder / "dask.log").open("a")
    quiet = ["--no-dashboard"]
    scheduler = [DASK, "scheduler", "--port", str(port), "--host", "127.0.0.1", *quiet]
    processes = [subprocess.Popen(scheduler, stdout=logs, stderr=logs)]
    try:
        for i in range(n_workers):
            worker = [DASK, "worker", address, "--nthreads", "1", "--name", f"w{i}", *quiet]
            processes.append(subprocess.Popen(worker, stdout=logs, stderr=logs, cwd=REPO))
        await anyio.to_thread.run_sync(_wait_for_workers, address, n_workers)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        logs.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_workers(address: str, n_workers: int) -> None:
    from distributed import Client

    deadline = time.monotonic() + 120
    while True:  # the scheduler takes a moment to listen
        try:
            client = Client(address, timeout=5)  # type: ignore[no-untyped-call]
            break
        except OSError:
            if time.monotonic() > deadline:
                raise BenchError(f"no Dask scheduler at {address}") from None
            time.sleep(0.2)
    with client:
        if n_workers:
            client.wait_for_workers(n_workers, timeout=120)


def summarise(setups: list[dict[str, Any]]) -> dict[str, Any]:
    return speedup_summary(
        setups,
        setups[1] if len(setups) > 1 else None,
        "speedup_2_dask_workers",
        f"2 Dask workers >= {SPEEDUP_TARGET}x the trials/hour of 1",
    )


def markdown(result: dict[str, Any]) -> str:
    rows = [
        (
            s["label"],
            round(s["wall_s"], 1),
            round(s["trials_per_hour"]),
            f"{s['speedup']:.2f}x",
            round(s["mean_trial_wall_s"], 2),
            round(s["mean_fit_s"], 2),
            s["workers_used"] or "-",
        )
        for s in result["setups"]
    ]
    header = (
        "setup",
        "run wall s",
        "trials/hour",
        "vs dask 1 worker",
        "trial wall s",
        "model.fit s",
        "Dask workers that trained",
    )
    config = result["config"]
    note = (
        f"{config['n_trials']} trials of one fixed config ({config['dataset']}, "
        f"{config['max_epochs']} epochs, trainer {config['trainer']}) on PostgreSQL; Dask "
        "workers started with `dask worker --nthreads 1` on this machine; warm workers."
    )
    return markdown_table(header, rows) + "\n\n" + note
