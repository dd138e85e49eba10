"""Drive `seqtune serve` over stdio the way an MCP client does, and read what it stored.

The benchmarks never import TensorFlow: training happens in the server's
workers. The study database is read back with plain Optuna for the per-trial
timings the worker recorded (user attrs `timings`, `seconds`, `epochs`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import psutil
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from bench.common import REPO, shared_data_dir

optuna.logging.set_verbosity(optuna.logging.WARNING)
logging.getLogger("mcp").setLevel(logging.WARNING)

CALL_TIMEOUT_S = 3600
_READY_LINE = re.compile(
    r"worker (?P<pid>\d+) ready \((?P<trainer>\w+), (?P<threads>\d+) threads, "
    r"cpus=(?P<cpus>.+?), import (?P<import_s>[\d.]+) s\)"
)
# The cheapest real trial: it makes a worker import TensorFlow and trace one model.
WARMUP_SPACE: dict[str, Any] = {
    "lstm_units_1": 16,
    "use_second_lstm": False,
    "dense_units": 16,
    "dropout_rate": {"value": 0.2},
    "learning_rate": {"value": 1e-3},
    "optimizer_choice": "adam",
    "batch_size": 64,
}


class BenchError(RuntimeError):
    """A tool call failed or a run did not complete: the benchmark cannot go on."""


@dataclass
class Server:
    client: Client
    workspace: Path
    log_path: Path
    startup_s: float

    def process(self) -> psutil.Process:
        """The `seqtune serve` process behind this client."""
        marker = str(self.workspace)
        for proc in psutil.Process().children(recursive=True):
            try:
                cmd = proc.cmdline()
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            if "server.cli" in cmd and "serve" in cmd and marker in cmd:
                return proc
        raise BenchError(f"no seqtune server process found for {marker}")

    def worker_starts(self) -> list[dict[str, Any]]:
        return parse_worker_starts(self.log_path)


def serve_params(
    workspace: Path, trainer: str, env: dict[str, str], extra: tuple[str, ...] = ()
) -> StdioServerParameters:
    """`seqtune serve` in this interpreter, allowed to read the shared datasets."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    base.update({"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO), **env})
    args = [
        "-m",
        "server.cli",
        "serve",
        "--workspace",
        str(workspace),
        "--data-root",
        str(shared_data_dir()),
        "--trainer",
        trainer,
        "--log-level",
        "INFO",
        *extra,
    ]
    return StdioServerParameters(command=sys.executable, args=args, env=base, cwd=str(REPO))


@asynccontextmanager
async def seqtune_server(
    workspace: Path,
    *,
    trainer: str = "keras",
    env: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> AsyncIterator[Server]:
    """Start a server, time spawn -> `initialize` answered, and hand out its client."""
    workspace.mkdir(parents=True, exist_ok=True)
    log_path = workspace.parent / f"{workspace.name}.server.log"
    with log_path.open("a") as log:
        params = serve_params(workspace, trainer, env or {}, extra)
        started = time.perf_counter()
        transport = stdio_client(params, errlog=log)
        async with Client(transport, read_timeout_seconds=CALL_TIMEOUT_S) as client:
            startup_s = time.perf_counter() - started
            yield Server(client, workspace, log_path, startup_s)


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        raise BenchError(f"{tool} failed: {text}")
    if result.structured_content is None:
        raise BenchError(f"{tool} returned no structured content")
    return dict(result.structured_content)


async def tool_names(client: Client) -> set[str]:
    return {tool.name for tool in (await client.list_tools()).tools}


async def run_to_end(
    client: Client,
    study_name: str,
    n_trials: int,
    n_workers: int,
    enqueue: list[dict[str, Any]] | None = None,
    executor: str = "local",
) -> tuple[dict[str, Any], float]:
    """run_trials, polling get_run until the run ends; returns its report and wall seconds."""
    arguments: dict[str, Any] = {
        "study_name": study_name,
        "n_trials": n_trials,
        "n_workers": n_workers,
        "wait_s": CALL_TIMEOUT_S - 60,
        "executor": executor,
    }
    if enqueue:
        arguments["enqueue"] = enqueue
    started = time.perf_counter()
    report = await call(client, "run_trials", **arguments)
    while report["state"] == "running":
        report = await call(client, "get_run", run_id=report["run_id"], wait_s=CALL_TIMEOUT_S - 60)
    wall = time.perf_counter() - started
    if report["state"] != "completed":
        raise BenchError(f"run on {study_name} ended {report['state']}: {report.get('error')}")
    return report, wall


async def warm_up(client: Client, n_workers: int, dataset: str) -> dict[str, Any]:
    """Make `n_workers` workers import TensorFlow and train once, so later runs find them warm.

    Workers are reused by thread count, so warm up with the n_workers of the
    run that follows.
    """
    name = f"warmup-{n_workers}w-{uuid.uuid4().hex[:6]}"
    await call(
        client,
        "create_study",
        study_name=name,
        dataset=dataset,
        max_epochs=1,
        patience=1,
        pruner="none",
        search_space=WARMUP_SPACE,
    )
    _, wall = await run_to_end(client, name, n_trials=n_workers, n_workers=n_workers)
    return {"study": name, "wall_s": round(wall, 3)}


def storage_url(workspace: Path) -> str:
    return f"sqlite:///{workspace / 'seqtune.db'}"


def stored_trials(
    workspace: Path, study_name: str, storage: str | None = None
) -> list[optuna.trial.FrozenTrial]:
    rdb = optuna.storages.RDBStorage(storage or storage_url(workspace))
    try:
        study = optuna.load_study(study_name=study_name, storage=rdb)
        return sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    finally:
        rdb.engine.dispose()


def trial_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One stored trial as the benchmarks use it: state, value, epochs and timings."""
    wall = None
    if trial.datetime_start and trial.datetime_complete:
        wall = (trial.datetime_complete - trial.datetime_start).total_seconds()
    return {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value,
        "params": trial.params,
        "epochs": int(trial.user_attrs.get("epochs", len(trial.intermediate_values))),
        "server_seconds": trial.user_attrs.get("seconds"),
        "timings": dict(trial.user_attrs.get("timings", {})),
        "start": trial.datetime_start.timestamp() if trial.datetime_start else None,
        "complete": trial.datetime_complete.timestamp() if trial.datetime_complete else None,
        "wall_s": wall,
        "worker": trial.user_attrs.get("seqtune_remote_worker"),
    }


def parse_worker_starts(log_path: Path) -> list[dict[str, Any]]:
    """Worker 'ready' lines of the server log: pid, threads, cpus, TF import seconds."""
    if not log_path.is_file():
        return []
    starts = []
    for match in _READY_LINE.finditer(log_path.read_text(errors="replace")):
        starts.append(
            {
                "pid": int(match["pid"]),
                "trainer": match["trainer"],
                "threads": int(match["threads"]),
                "cpus": match["cpus"],
                "import_s": float(match["import_s"]),
            }
        )
    return starts
