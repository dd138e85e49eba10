"""Benchmark 1, the headline: what seqtune costs over the plain Optuna loop.

The same study (dataset, seed, TPE sampler, search space, epochs, trials,
no pruning, one worker, same threads) runs two ways: (a) the plain
`study.optimize(objective)` loop in a subprocess (`bench.plain_loop`), and
(b) seqtune driven over stdio MCP (`create_study`, `run_trials`). Both warm
up first (one throwaway trial), so the comparison is per-trial cost with a
warm worker; the cold start parts are reported beside it.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio

from bench import hotspots
from bench.common import (
    REPO,
    Stopwatch,
    cpu_count,
    markdown_table,
    mean,
    rounded,
    shared_data_dir,
    target,
)
from bench.mcp_driver import (
    call,
    run_to_end,
    seqtune_server,
    stored_trials,
    trial_record,
    warm_up,
)

NAME = "overhead"
RATIO_TARGET = 1.05
SPACE: dict[str, Any] = {
    "lstm_units_1": [16, 32],
    "use_second_lstm": False,
    "dense_units": [16, 32],
    "dropout_rate": {"low": 0.2, "high": 0.5},
    "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
    "optimizer_choice": ["adam", "rmsprop"],
    "batch_size": [32, 64],
}


@dataclass(frozen=True)
class OverheadConfig:
    n_trials: int = 10
    max_epochs: int = 6
    patience: int = 3
    dataset: str = "italypower_imbalanced.npz"
    metric: str = "val_loss"
    seed: int = 7
    n_startup_trials: int = 10
    imbalance: str = "smote"
    search_space: dict[str, Any] = field(default_factory=lambda: dict(SPACE))


CONFIGS = {
    "full": OverheadConfig(),
    "quick": OverheadConfig(n_trials=4, max_epochs=4),
    "smoke": OverheadConfig(n_trials=1, max_epochs=1, patience=1),
}


async def run(mode: str, scratch: Path, results_dir: Path) -> dict[str, Any]:
    config = CONFIGS[mode]
    plain = await run_plain_loop(config, scratch / "plain")
    served = await run_seqtune(config, scratch / "seqtune")
    storage_ms = hotspots.storage_cost_per_trial(config.search_space, config.max_epochs)
    return {"config": asdict(config), **analyse(config, plain, served), "storage_ms": storage_ms}


def plain_spec(config: OverheadConfig) -> dict[str, Any]:
    return {
        "dataset": config.dataset,
        "data_root": str(shared_data_dir()),
        "metric": config.metric,
        "direction": "minimize" if config.metric == "val_loss" else "maximize",
        "max_epochs": config.max_epochs,
        "patience": config.patience,
        "seed": config.seed,
        "n_trials": config.n_trials,
        "n_startup_trials": config.n_startup_trials,
        "search_space": config.search_space,
        "imbalance": config.imbalance,
        "threads": cpu_count(),  # what seqtune gives its only worker
        "warmup": True,
    }


async def run_plain_loop(config: OverheadConfig, folder: Path) -> dict[str, Any]:
    """(a): `python -m bench.plain_loop` in a subprocess; wall time from spawn to exit."""
    folder.mkdir(parents=True, exist_ok=True)
    spec_path, out_path = folder / "spec.json", folder / "result.json"
    spec_path.write_text(json.dumps(plain_spec(config)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "bench.plain_loop", str(spec_path), str(out_path)]
    with Stopwatch() as watch, (folder / "stderr.log").open("w") as errlog:
        process = await anyio.run_process(command, cwd=REPO, env=env, stderr=errlog, check=False)
    if process.returncode != 0:
        raise RuntimeError(f"plain loop failed (code {process.returncode}); see {errlog.name}")
    result: dict[str, Any] = json.loads(out_path.read_text())
    result["process_wall_s"] = watch.seconds
    return result


async def run_seqtune(config: OverheadConfig, folder: Path) -> dict[str, Any]:
    """(b): `seqtune serve` over stdio; a warm-up run first, then the study."""
    workspace = folder / "ws"
    async with seqtune_server(workspace) as server:
        warm = await warm_up(server.client, 1, config.dataset)
        with Stopwatch() as create:
            await call(server.client, "create_study", **study_arguments(config))
        report, run_wall = await run_to_end(server.client, "overhead", config.n_trials, 1)
        starts = server.worker_starts()
    warm_trial = trial_record(stored_trials(workspace, warm["study"])[0])
    return {
        "startup_s": server.startup_s,
        "create_study_s": create.seconds,
        "run_wall_s": run_wall,
        "run_elapsed_s": report["elapsed_s"],
        "warmup": {**warm, "trial": warm_trial},
        "worker_starts": starts,
        "trials": [trial_record(t) for t in stored_trials(workspace, "overhead")],
    }


def study_arguments(config: OverheadConfig) -> dict[str, Any]:
    return {
        "study_name": "overhead",
        "dataset": config.dataset,
        "metric": config.metric,
        "sampler": "tpe",
        "n_startup_trials": config.n_startup_trials,
        "pruner": "none",
        "search_space": config.search_space,
        "imbalance": config.imbalance,
        "max_epochs": config.max_epochs,
        "patience": config.patience,
        "seed": config.seed,
    }


def per_trial_means(trials: list[dict[str, Any]]) -> dict[str, float]:
    """Mean seconds per trial of each part, plus the gaps between consecutive trials."""

    def part(key: str) -> float:
        return mean(t["timings"].get(key, 0.0) for t in trials)

    parts: dict[str, float] = {
        "wall_s": mean(t["wall_s"] for t in trials),
        "worker_trial_s": part("trial_s"),
        "fit_s": part("fit_s"),
        "build_s": part("build_s"),
        "load_s": part("load_s"),
        "suggest_s": part("suggest_s"),
        "gap_s": mean(b["start"] - a["complete"] for a, b in itertools.pairwise(trials)),
        "epochs": mean(t["epochs"] for t in trials),
    }
    # clear_session + seeding + build + compile: whatever the trial did besides load and fit.
    parts["setup_s"] = (
        parts["worker_trial_s"] - parts["load_s"] - parts["suggest_s"] - parts["fit_s"]
    )
    parts["outside_fit_s"] = parts["wall_s"] - parts["fit_s"]
    parts["storage_protocol_s"] = parts["wall_s"] - parts["worker_trial_s"]
    served = [t for t in trials if t.get("server_seconds") is not None]
    if served:
        parts["pipe_and_epoch_reports_s"] = mean(
            t["server_seconds"] - t["timings"].get("trial_s", 0.0) for t in served
        )
        parts["ask_tell_s"] = mean(t["wall_s"] - t["server_seconds"] for t in served)
    return parts


def compare_values(plain: list[dict[str, Any]], served: list[dict[str, Any]]) -> dict[str, Any]:
    """Per trial number: are the two values identical (determinism on)?"""
    by_number = {t["number"]: t for t in served}
    rows = []
    for a in plain:
        b = by_number.get(a["number"], {})
        va, vb = a["value"], b.get("value")
        diff = None if va is None or vb is None else abs(va - vb)
        same_params = a["params"] == b.get("params")
        rows.append(
            {
                "number": a["number"],
                "plain": va,
                "seqtune": vb,
                "abs_diff": diff,
                "identical": va == vb and va is not None,
                "same_params": same_params,
            }
        )
    diffs = [r["abs_diff"] for r in rows if r["abs_diff"] is not None]
    return {
        "identical": bool(rows) and all(r["identical"] for r in rows),
        "n_identical": sum(r["identical"] for r in rows),
        "n_compared": len(rows),
        "max_abs_diff": max(diffs) if diffs else None,
        "per_trial": rows,
    }


def worker_cold_start(served: dict[str, Any]) -> dict[str, float | None]:
    """Process start + TF import: the warm-up trial's wall minus the training it did."""
    trial = served["warmup"]["trial"]
    spawn_and_import = trial["wall_s"] - trial["timings"].get("trial_s", 0.0)
    imports = [s["import_s"] for s in served["worker_starts"]]
    return {
        "spawn_import_ready_s": spawn_and_import,
        "tf_import_s": imports[0] if imports else None,
    }


def analyse(
    config: OverheadConfig, plain: dict[str, Any], served: dict[str, Any]
) -> dict[str, Any]:
    n = config.n_trials
    a_opt, b_run = plain["phases"]["optimize_s"], served["run_wall_s"]
    a_parts, b_parts = per_trial_means(plain["trials"]), per_trial_means(served["trials"])
    a_fit_total = a_parts["fit_s"] * n
    b_nonfit_total = b_run - b_parts["fit_s"] * n
    cold = worker_cold_start(served)
    plain_e2e = plain["process_wall_s"] - plain["phases"]["warmup_s"]
    seqtune_e2e = (
        served["startup_s"] + cold["spawn_import_ready_s"] + served["create_study_s"] + b_run
    )
    ratio = b_run / a_opt
    values = compare_values(plain["trials"], served["trials"])
    return {
        "plain": {
            "optimize_s": a_opt,
            "phases": plain["phases"],
            "process_wall_s": plain["process_wall_s"],
            "per_trial": a_parts,
            "threads": plain["threads"],
            "trials": plain["trials"],
        },
        "seqtune": {
            "run_wall_s": b_run,
            "startup_s": served["startup_s"],
            "create_study_s": served["create_study_s"],
            "worker_cold_start": cold,
            "per_trial": b_parts,
            "run_fixed_s": run_fixed(served, b_parts, n),
            "warmup": served["warmup"],
            "worker_starts": served["worker_starts"],
            "trials": served["trials"],
        },
        "ratio": ratio,
        "ratio_same_fit_time": (a_fit_total + b_nonfit_total) / a_opt,
        "overhead_per_trial_s": (b_run - a_opt) / n,
        "cold_end_to_end": {
            "plain_s": plain_e2e,
            "seqtune_s": seqtune_e2e,
            "ratio": seqtune_e2e / plain_e2e,
        },
        "values": values,
        "targets": {
            "ratio": target(
                f"seqtune/plain wall <= {RATIO_TARGET} (warm worker)", ratio, ratio <= RATIO_TARGET
            ),
            "identical_values": target(
                "identical trial values", values["n_identical"], values["identical"]
            ),
        },
    }


def run_fixed(served: dict[str, Any], parts: dict[str, float], n: int) -> float:
    """Per-run cost outside trials and gaps: the MCP call, opening the study, the report."""
    run_wall: float = served["run_wall_s"]
    return run_wall - parts["wall_s"] * n - parts["gap_s"] * max(0, n - 1)


def markdown(result: dict[str, Any]) -> str:
    a, b = result["plain"], result["seqtune"]
    pa, pb = a["per_trial"], b["per_trial"]
    n = result["config"]["n_trials"]
    rows = [
        (f"wall of {n} trials (warm), s", a["optimize_s"], b["run_wall_s"]),
        ("per trial: wall, s", pa["wall_s"], pb["wall_s"]),
        ("per trial: model.fit, s", pa["fit_s"], pb["fit_s"]),
        ("per trial: clear_session + seed + build + compile, s", pa["setup_s"], pb["setup_s"]),
        ("per trial: outside model.fit, s", pa["outside_fit_s"], pb["outside_fit_s"]),
        ("between trials (sampler, loop), s", pa["gap_s"], pb["gap_s"]),
        ("epochs per trial", pa["epochs"], pb["epochs"]),
    ]
    head = markdown_table(("", "plain loop (a)", "seqtune over MCP (b)"), rows)
    values = result["values"]
    summary = [
        f"- ratio b/a: **{result['ratio']:.3f}** (target <= {RATIO_TARGET}); with equal "
        f"model.fit times: {result['ratio_same_fit_time']:.3f}; "
        f"{result['overhead_per_trial_s'] * 1000:+.0f} ms per trial",
        f"- identical trial values (determinism on): **{'yes' if values['identical'] else 'no'}**"
        f" ({values['n_identical']}/{values['n_compared']}, max |diff| "
        f"{values['max_abs_diff']})",
        f"- cold, end to end (spawn to last trial, no warm-up): plain "
        f"{result['cold_end_to_end']['plain_s']:.1f} s, seqtune "
        f"{result['cold_end_to_end']['seqtune_s']:.1f} s "
        f"(ratio {result['cold_end_to_end']['ratio']:.2f})",
    ]
    return "\n".join([head, "", *summary, "", breakdown_table(result), "", storage_table(result)])


def storage_table(result: dict[str, Any]) -> str:
    """The storage calls of one trial, timed in-process on each kind of storage."""
    epochs = result["config"]["max_epochs"]
    rows = [
        (
            label,
            round(ms["ask_suggest"], 1),
            round(ms["epoch_reports"], 1),
            round(ms["attrs_tell"], 1),
            round(ms["total"], 1),
        )
        for label, ms in result["storage_ms"].items()
    ]
    header = (
        "storage (in-process, one trial)",
        "ask + suggest ms",
        f"{epochs} epoch reports ms",
        "attrs + tell ms",
        "total ms",
    )
    return markdown_table(header, rows)


def breakdown_table(result: dict[str, Any]) -> str:
    b, pb = result["seqtune"], result["seqtune"]["per_trial"]
    cold = b["worker_cold_start"]
    rows = [
        ("server startup (spawn -> initialize answered)", b["startup_s"]),
        ("worker start: process + TF import + ready (cold, once)", cold["spawn_import_ready_s"]),
        ("  of which TF import (worker Ready message)", cold["tf_import_s"]),
        ("create_study (data prep + storage)", b["create_study_s"]),
        ("per trial: worker data load", pb["load_s"]),
        ("per trial: worker trial_s (load + build + fit)", pb["worker_trial_s"]),
        ("per trial: storage + protocol (trial wall - worker trial_s)", pb["storage_protocol_s"]),
        ("  of which pipe + per-epoch report/prune", pb.get("pipe_and_epoch_reports_s")),
        ("  of which ask / tell / user attrs", pb.get("ask_tell_s")),
        ("per run: MCP call, open study, report (fixed)", b["run_fixed_s"]),
    ]
    return markdown_table(("seqtune part", "seconds"), [(k, rounded(v, 4)) for k, v in rows])
