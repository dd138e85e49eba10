"""Gather the latest results/*.json into RESULTS.md: machine, targets, tables, limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.common import markdown_table

ORDER = ("overhead", "scaling", "pruning", "samplers", "latency", "dask")
TITLES = {
    "overhead": "1. Overhead: seqtune over MCP vs the plain Optuna loop",
    "scaling": "2. Parallel scaling",
    "pruning": "3. Pruning",
    "samplers": "4. Samplers",
    "latency": "5. Server latency and scale",
    "dask": "7. Scale-out: Dask workers on PostgreSQL",
}
MODE_NOTES = {
    "full": "full mode (`make bench`)",
    "quick": "QUICK mode (`make bench QUICK=1`): small sizes, indicative only; "
    "run `make bench` for the numbers the targets refer to",
    "smoke": "SMOKE mode (the test's tiny sizes): checks the scripts, not the numbers",
}


def load_results(out_dir: Path) -> dict[str, dict[str, Any]]:
    folder = out_dir / "results"
    found = {}
    for name in ORDER:
        path = folder / f"{name}.json"
        if path.is_file():
            found[name] = json.loads(path.read_text())
    return found


def write_results_md(out_dir: Path) -> Path:
    found = load_results(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "RESULTS.md"
    path.write_text(render(found) + "\n")
    return path


def render(found: dict[str, dict[str, Any]]) -> str:
    parts = ["# seqtune benchmark results", header(found)]
    if found:
        parts += [machine_section(found), targets_section(found)]
    for name, result in found.items():
        parts.append(f"## {TITLES[name]}\n\n{section_meta(result)}\n\n{result['table']}")
        if name == "samplers" and result.get("png"):
            parts.append(f"![best value so far]({Path('results') / Path(result['png']).name})")
    parts.append(limits_section(found))
    return "\n\n".join(parts)


def header(found: dict[str, dict[str, Any]]) -> str:
    if not found:
        return "No results yet: run `make bench` or `make bench QUICK=1`."
    modes = sorted({r["mode"] for r in found.values()})
    notes = "; ".join(MODE_NOTES[m] for m in modes)
    commands = sorted({r["command"] for r in found.values()})
    dates = sorted(r["date"] for r in found.values())
    lines = [f"> **Mode:** {notes}.", f"> **Date:** {dates[0]} to {dates[-1]}."]
    lines += [f"> **Command:** `{c}` (from the repository root)." for c in commands]
    busiest = max(r["machine"].get("load_avg_1m", 0.0) for r in found.values())
    if busiest >= 1.0:
        cores = next(iter(found.values()))["machine"]["cores"]
        lines.append(
            f"> **Note:** the machine was not idle (1-minute load average up to {busiest} on "
            f"{cores} cores when a benchmark started): timings are noisy."
        )
    return "\n".join(lines)


def machine_section(found: dict[str, dict[str, Any]]) -> str:
    machine = next(iter(found.values()))["machine"]
    keys = (
        "cores",
        "cpu_model",
        "ram_gb",
        "python",
        "tensorflow",
        "keras",
        "optuna",
        "mcp",
        "platform",
    )
    rows = [(key, machine.get(key)) for key in keys]
    loads = ", ".join(f"{n} {r['machine'].get('load_avg_1m')}" for n, r in found.items())
    return (
        "## Machine\n\n"
        + markdown_table(("", "value"), rows)
        + f"\n\nLoad average (1 min) when each benchmark started: {loads}."
    )


def targets_section(found: dict[str, dict[str, Any]]) -> str:
    rows = []
    for name, result in found.items():
        for entry in result.get("targets", {}).values():
            met = {True: "yes", False: "**no**", None: "-"}[entry["met"]]
            value = entry["value"]
            rows.append(
                (name, entry["target"], round(value, 4) if isinstance(value, float) else value, met)
            )
    return "## Targets\n\n" + markdown_table(("benchmark", "target", "measured", "met"), rows)


def section_meta(result: dict[str, Any]) -> str:
    return (
        f"_{result['mode']} mode, {result['date']}, {result['duration_s']:.0f} s; raw data: "
        f"`results/{result['benchmark']}.json`._"
    )


def limits_section(found: dict[str, dict[str, Any]]) -> str:
    """Item 6: what limits the numbers above, stated from the measurements."""
    lines = []
    if "latency" in found:
        lines += latency_limits(found["latency"])
    if "overhead" in found:
        lines += overhead_limits(found["overhead"])
    if "scaling" in found:
        lines += scaling_limits(found["scaling"])
    if not lines:
        return "## 6. What limits it\n\nRun the latency and overhead benchmarks first."
    return "## 6. What limits it\n\n" + "\n".join(lines)


def latency_limits(result: dict[str, Any]) -> list[str]:
    profile = result["profile"]
    n = result["config"]["n_trials"]
    best = profile["best_params"]
    share = best["profile"]["rdb_get_trials_s"] / (best["profile"]["total_s"] or 1.0)
    startup = profile["startup_imports"]
    heavy = ", ".join(f"{name} {s:.2f} s" for name, s in startup["heaviest"][:6])
    return [
        f"- **best_params / list_trials on {n} trials.** With the bare RDB storage (before), "
        f"`results.best_params` took {best['seconds'] * 1000:.0f} ms in-process, "
        f"{share:.0%} of it in Optuna's `RDBStorage._get_trials`, reading every trial back on "
        "every call. The workspace now keeps Optuna's trial cache "
        "(`optuna.storages.get_storage`): the first call costs "
        f"{best['with_trial_cache']['first_s'] * 1000:.0f} ms and later ones "
        f"{best['with_trial_cache']['later_s'] * 1000:.1f} ms "
        f"(list_trials: {profile['list_trials']['with_trial_cache']['later_s'] * 1000:.1f} ms), "
        f"answers {'identical' if profile['same_answers'] else 'DIFFERENT'}.",
        f"- **Startup.** Importing `server.cli` and `server.app` takes "
        f"{startup['process_wall_s']:.2f} s; heaviest: {heavy}. scikit-learn, matplotlib and "
        "plotly are imported on first use (predict, retrain, plot_history), not at startup.",
    ]


def overhead_limits(result: dict[str, Any]) -> list[str]:
    b = result["seqtune"]["per_trial"]
    epochs = [t["epoch_s"] for t in result["plain"]["trials"] if t.get("epoch_s")]
    first = sum(e[0] for e in epochs) / len(epochs) if epochs else None
    later = [s for e in epochs for s in e[1:]]
    lines = [
        f"- **Per-trial overhead.** Outside the worker's training, a trial costs "
        f"{b['storage_protocol_s'] * 1000:.0f} ms (ask/tell and user attrs "
        f"{b.get('ask_tell_s', 0) * 1000:.0f} ms, pipe and per-epoch report/prune "
        f"{b.get('pipe_and_epoch_reports_s', 0) * 1000:.0f} ms), plus "
        f"{b['gap_s'] * 1000:.0f} ms between trials.",
    ]
    storage = result.get("storage_ms")
    if storage:
        lines.append(
            f"- **Storage.** The storage calls of one trial (ask + suggest, "
            f"{result['config']['max_epochs']} epoch reports, attrs + tell) take "
            f"{storage['sqlite_wal']['total']:.0f} ms on SQLite as the server opens it, "
            f"{storage['in_memory']['total']:.0f} ms in memory, and "
            f"{storage['sqlite_wal_sync_normal']['total']:.0f} ms with "
            "`PRAGMA synchronous=NORMAL` (the WAL synced at checkpoints, not at every "
            "commit): every report, attr and param is its own SQLite transaction."
        )
    if first is not None and later:
        lines.append(
            f"- **Trial cost.** In both loops the first epoch of a trial takes {first:.2f} s "
            f"against {sum(later) / len(later):.2f} s for later epochs: Keras traces and "
            "optimises a fresh graph for every new model (one per trial, after "
            "`clear_session`), so short trials are dominated by that fixed cost, and pruning "
            "saves epochs faster than it saves wall time."
        )
    return lines


def scaling_limits(result: dict[str, Any]) -> list[str]:
    setups = result["setups"]
    one = setups[0]["mean_trial_wall_s"]
    pinned = next((s for s in setups[1:] if s["setup"]["pin_cpus"]), None)
    if pinned is None or not one:
        return []
    slower = pinned["mean_trial_wall_s"] / one
    return [
        f"- **Scaling.** One worker already runs TensorFlow on every core; with 2 workers a "
        f"trial took {slower:.2f}x as long (1 thread each), so 2 workers can at best be "
        f"{2 / slower:.2f}x faster; measured {pinned['speedup']:.2f}x."
    ]
