"""Item 6: where the slow calls spend their time, measured in-process.

The server runs `best_params` and `list_trials` as `tools.results` functions
in a worker thread, which cProfile in the server's main thread would not
see; so they are profiled here on the same study database, with a
`Workspace` like the server's. The fix measured beside them keeps one Optuna
trial cache per workspace (`optuna.storages.get_storage` wraps the RDB
storage in `_CachedStorage`, as `optuna.load_study(storage=url)` does), so
only new or unfinished trials are read on later calls; it is measured against
the bare RDB storage the server used before. Server startup is
profiled with `python -X importtime`.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy

from bench.common import REPO, markdown_table, median, rounded
from tools import results
from tools.search_space import resolve_search_space, suggest_params
from tools.workspace import Workspace

REPEATS = 3
TOP = 8


class UncachedWorkspace(Workspace):
    """Before the fix: the bare RDB storage, every call reading all trials back."""

    def storage(self) -> optuna.storages.BaseStorage:
        return self.rdb()


def tool_calls(ws: Workspace, study: str) -> dict[str, Callable[[], Any]]:
    return {
        "best_params": lambda: results.best_params(ws, study),
        "list_trials": lambda: results.list_trials(ws, study, None, 100, "number"),
    }


def profile(workspace: Path, study: str, data_root: Path) -> dict[str, Any]:
    current = UncachedWorkspace(root=workspace, data_roots=(data_root,))
    fixed = Workspace(root=workspace, data_roots=(data_root,))
    out: dict[str, Any] = {}
    for name, call in tool_calls(current, study).items():
        out[name] = {"seconds": repeat_median(call), "profile": profile_call(call)}
    for name, call in tool_calls(fixed, study).items():
        first = timed(call)
        out[name]["with_trial_cache"] = {"first_s": first, "later_s": repeat_median(call)}
    out["same_answers"] = same_answers(current, fixed, study)
    out["startup_imports"] = import_profile()
    out["startup_split"] = startup_split()
    return out


def storage_cost_per_trial(
    search_space: dict[str, Any], epochs: int, n_trials: int = 12
) -> dict[str, dict[str, float]]:
    """Milliseconds per trial of the storage calls the server makes for one trial.

    Mirrors `tools.trials`: ask + owner attr + suggest (one storage call), a
    report + should_prune per epoch, the result's user attrs, then tell. Run on
    Optuna's in-memory storage (the plain loop), on SQLite as the server opens
    it (WAL), and on SQLite with `PRAGMA synchronous=NORMAL` (a candidate fix).
    """
    space = resolve_search_space(search_space)
    with tempfile.TemporaryDirectory() as folder:
        served = Workspace(root=Path(folder) / "served").rdb()
        relaxed = Workspace(root=Path(folder) / "relaxed").rdb()
        relax_sync(relaxed)
        return {
            label: trial_storage_ms(storage, space, epochs, n_trials)
            for label, storage in (
                ("in_memory", None),
                ("sqlite_wal", served),
                ("sqlite_wal_sync_normal", relaxed),
            )
        }


def relax_sync(storage: Any) -> None:
    """`PRAGMA synchronous=NORMAL` on every connection (safe with WAL; fsync at checkpoints)."""

    @sqlalchemy.event.listens_for(storage.engine, "connect")
    def _normal(connection: Any, record: Any) -> None:
        connection.execute("PRAGMA synchronous=NORMAL")

    storage.engine.dispose()


def trial_storage_ms(
    storage: Any, space: dict[str, Any], epochs: int, n_trials: int
) -> dict[str, float]:
    sampler = optuna.samplers.TPESampler(seed=0, constant_liar=True)
    study = optuna.create_study(storage=storage, sampler=sampler, pruner=optuna.pruners.NopPruner())
    steps = [one_trial_storage(study, space, epochs) for _ in range(n_trials)]
    means = {key: 1000 * median(step[key] for step in steps[2:]) for key in steps[0]}
    return {**means, "total": sum(means.values())}


def one_trial_storage(study: optuna.Study, space: dict[str, Any], epochs: int) -> dict[str, float]:
    started = time.perf_counter()
    trial = study.ask()
    trial.set_user_attr("seqtune_owner", "bench:0")
    suggest_params(trial, space)
    asked = time.perf_counter()
    for epoch in range(epochs):
        trial.report(0.5 + 0.01 * epoch, epoch)
        trial.should_prune()
    reported = time.perf_counter()
    for key, value in {
        "epochs": epochs,
        "seconds": 1.0,
        "best_epoch": 0,
        "timings": {"fit_s": 1.0, "trial_s": 1.0},
    }.items():
        trial.set_user_attr(key, value)
    study.tell(trial, 0.5, skip_if_finished=True)
    told = time.perf_counter()
    return {
        "ask_suggest": asked - started,
        "epoch_reports": reported - asked,
        "attrs_tell": told - reported,
    }


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def repeat_median(call: Callable[[], Any]) -> float:
    return median(timed(call) for _ in range(REPEATS))


def profile_call(call: Callable[[], Any]) -> dict[str, Any]:
    profiler = cProfile.Profile()
    profiler.runcall(call)
    stats = pstats.Stats(profiler)
    total = sum(entry[2] for entry in stats.stats.values())  # type: ignore[attr-defined]
    reads = [c[3] for (_, _, func), c in stats.stats.items() if func == "_get_trials"]  # type: ignore[attr-defined]
    return {
        "total_s": total,
        "rdb_get_trials_s": max(reads, default=0.0),
        "by_self_time": top_entries(stats, key=2),
        "by_cumulative": top_entries(stats, key=3),
    }


def top_entries(stats: pstats.Stats, key: int) -> list[dict[str, Any]]:
    entries = stats.stats.items()  # type: ignore[attr-defined]
    ranked = sorted(entries, key=lambda item: item[1][key], reverse=True)[:TOP]
    return [
        {
            "function": f"{short_path(path)}:{line}({func})",
            "calls": counts[1],
            "self_s": counts[2],
            "cumulative_s": counts[3],
        }
        for (path, line, func), counts in ranked
    ]


def short_path(path: str) -> str:
    for marker in ("site-packages/", str(REPO) + "/", sysconfig.get_paths()["stdlib"] + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def same_answers(current: Workspace, fixed: Workspace, study: str) -> bool:
    a, b = results.best_params(current, study), results.best_params(fixed, study)
    c, d = (results.list_trials(ws, study, None, 100, "number") for ws in (current, fixed))
    return a == b and c == d


def import_profile() -> dict[str, Any]:
    """`python -X importtime`: the heaviest packages and seqtune modules behind startup."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-X", "importtime", "-c", "import server.cli, server.app"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    heaviest = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].strip()
        if "." not in name or name.startswith(("server.", "tools.")):
            heaviest.append((name, int(parts[1]) / 1e6))
    heaviest.sort(key=lambda item: item[1], reverse=True)
    return {"process_wall_s": wall, "heaviest": heaviest[: TOP + 4]}


_SPLIT_SCRIPT = """
import json, pkgutil, time
import server
names = [m.name for m in pkgutil.iter_modules(server.__path__)]
light = [n for n in names if n not in ("app", "model_tools", "demo")]
t0 = time.perf_counter()
for name in light:
    __import__("server." + name)
t1 = time.perf_counter()
import server.model_tools
t2 = time.perf_counter()
import server.app
t3 = time.perf_counter()
print(json.dumps({"other_server_modules_s": t1 - t0, "model_tools_s": t2 - t1,
                  "app_rest_s": t3 - t2}))
"""


def startup_split() -> dict[str, float]:
    """Import cost of server.model_tools on top of every other server module (fresh process)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _SPLIT_SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    split: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return split


def markdown(profile: dict[str, Any]) -> str:
    rows = []
    for name in ("best_params", "list_trials"):
        entry = profile[name]
        cache = entry["with_trial_cache"]
        rows.append((name, ms(entry["seconds"]), ms(cache["first_s"]), ms(cache["later_s"])))
    fix = markdown_table(
        ("in-process call", "bare RDB (before) ms", "trial cache (now): first ms", "later ms"),
        rows,
    )
    hot = markdown_table(
        ("best_params: top self time", "calls", "self s", "cumulative s"),
        [
            (e["function"], e["calls"], rounded(e["self_s"]), rounded(e["cumulative_s"]))
            for e in profile["best_params"]["profile"]["by_self_time"]
        ],
    )
    imports, split = profile["startup_imports"], profile["startup_split"]
    startup = markdown_table(
        ("startup: import (package or seqtune module)", "cumulative s"),
        [(name, round(seconds, 3)) for name, seconds in imports["heaviest"]],
    )
    same = "identical" if profile["same_answers"] else "DIFFERENT"
    return "\n\n".join(
        [
            fix,
            f"Answers with the trial cache are {same} to those of the bare storage.",
            hot,
            f"`import server.cli, server.app` takes {imports['process_wall_s']:.2f} s "
            "in a fresh interpreter; importing `server.model_tools` after every other server "
            f"module adds {split['model_tools_s']:.2f} s "
            f"(the other server modules: {split['other_server_modules_s']:.2f} s):",
            startup,
        ]
    )


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
