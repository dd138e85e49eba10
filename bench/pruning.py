"""Benchmark 3: epochs trained and wall time per pruner, at an equal trial budget.

Pruners median, successive_halving, hyperband (their seqtune defaults) and
none, each over the same seeds, the same search space and trial count.
EarlyStopping patience equals max_epochs, so every saved epoch is the
pruner's doing. One server with warm workers runs every study.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import markdown_table, mean, target
from bench.mcp_driver import call, run_to_end, seqtune_server, stored_trials, warm_up

NAME = "pruning"
PRUNERS = ("none", "median", "successive_halving", "hyperband")
EPOCH_SAVING_TARGET = 0.40
VALUE_TOLERANCE = 0.01
SPACE: dict[str, Any] = {
    "lstm_units_1": [16, 32],
    "use_second_lstm": False,
    "dense_units": [16, 32],
    "dropout_rate": {"low": 0.2, "high": 0.5},
    "learning_rate": {"low": 1e-5, "high": 1e-2, "log": True},
    "optimizer_choice": ["adam", "rmsprop"],
    "batch_size": [32, 64],
}


@dataclass(frozen=True)
class PruningConfig:
    n_trials: int = 12
    max_epochs: int = 8
    seeds: tuple[int, ...] = (1, 2, 3)
    n_workers: int = 2
    n_startup_trials: int = 5
    dataset: str = "italypower_imbalanced.npz"
    metric: str = "val_auc"
    trainer: str = "keras"
    pruners: tuple[str, ...] = PRUNERS
    search_space: dict[str, Any] = field(default_factory=lambda: dict(SPACE))


CONFIGS = {
    "full": PruningConfig(),
    "quick": PruningConfig(n_trials=6, max_epochs=6, seeds=(1,)),
    "smoke": PruningConfig(n_trials=2, max_epochs=2, seeds=(1,), trainer="fake"),
}


async def run(mode: str, scratch: Path, results_dir: Path) -> dict[str, Any]:
    config = CONFIGS[mode]
    workspace = scratch / "ws"
    runs = []
    async with seqtune_server(workspace, trainer=config.trainer) as server:
        await warm_up(server.client, config.n_workers, config.dataset)
        for seed in config.seeds:
            for pruner in config.pruners:
                name = f"pruning-{pruner}-s{seed}"
                await call(
                    server.client, "create_study", **study_arguments(config, name, pruner, seed)
                )
                _, wall = await run_to_end(server.client, name, config.n_trials, config.n_workers)
                runs.append(study_outcome(workspace, name, pruner, seed, wall))
    return {"config": asdict(config), "runs": runs, **summarise(config, runs)}


def study_arguments(config: PruningConfig, name: str, pruner: str, seed: int) -> dict[str, Any]:
    return {
        "study_name": name,
        "dataset": config.dataset,
        "metric": config.metric,
        "sampler": "tpe",
        "n_startup_trials": config.n_startup_trials,
        "pruner": pruner,
        "search_space": config.search_space,
        "max_epochs": config.max_epochs,
        "patience": config.max_epochs,
        "seed": seed,
    }


def study_outcome(
    workspace: Path, name: str, pruner: str, seed: int, wall: float
) -> dict[str, Any]:
    trials = stored_trials(workspace, name)
    values = [t.value for t in trials if t.value is not None]
    states = [t.state.name for t in trials]
    return {
        "pruner": pruner,
        "seed": seed,
        "wall_s": wall,
        "epochs": sum(int(t.user_attrs.get("epochs", 0)) for t in trials),
        "best_value": max(values) if values else None,
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
    }


def summarise(config: PruningConfig, runs: list[dict[str, Any]]) -> dict[str, Any]:
    baseline = {r["seed"]: r for r in runs if r["pruner"] == "none"}
    per_pruner = {p: pruner_summary(p, runs, baseline) for p in config.pruners}
    meeting = [p for p, s in per_pruner.items() if p != "none" and s["meets_target"]]
    best_saving = max(
        (s["epoch_saving"] for p, s in per_pruner.items() if p != "none"), default=None
    )
    description = (
        f">= {EPOCH_SAVING_TARGET:.0%} fewer epochs than no pruning with the best value "
        f"within {VALUE_TOLERANCE} (mean over seeds)"
    )
    return {
        "per_pruner": per_pruner,
        "pruners_meeting_target": meeting,
        "targets": {"pruning": target(description, best_saving, bool(meeting))},
    }


def pruner_summary(
    pruner: str, runs: list[dict[str, Any]], baseline: dict[int, Any]
) -> dict[str, Any]:
    mine = [r for r in runs if r["pruner"] == pruner]
    savings = [1 - r["epochs"] / baseline[r["seed"]]["epochs"] for r in mine]
    wall_savings = [1 - r["wall_s"] / baseline[r["seed"]]["wall_s"] for r in mine]
    gaps = [
        baseline[r["seed"]]["best_value"] - r["best_value"]
        for r in mine
        if r["best_value"] is not None and baseline[r["seed"]]["best_value"] is not None
    ]
    saving, gap = mean(savings), mean(gaps) if gaps else None
    return {
        "epochs_mean": mean(r["epochs"] for r in mine),
        "wall_s_mean": mean(r["wall_s"] for r in mine),
        "best_value_mean": mean(r["best_value"] for r in mine if r["best_value"] is not None),
        "pruned_mean": mean(r["pruned"] for r in mine),
        "epoch_saving": saving,
        "wall_saving": mean(wall_savings),
        "best_value_gap": gap,
        "worst_gap": max(gaps) if gaps else None,
        "meets_target": saving >= EPOCH_SAVING_TARGET
        and gap is not None
        and gap <= VALUE_TOLERANCE,
    }


def markdown(result: dict[str, Any]) -> str:
    rows = []
    for pruner, s in result["per_pruner"].items():
        rows.append(
            (
                pruner,
                round(s["epochs_mean"], 1),
                f"{s['epoch_saving']:.0%}",
                round(s["wall_s_mean"], 1),
                f"{s['wall_saving']:.0%}",
                round(s["pruned_mean"], 1),
                round(s["best_value_mean"], 4),
                "-" if s["best_value_gap"] is None else f"{s['best_value_gap']:+.4f}",
                "-" if pruner == "none" else ("yes" if s["meets_target"] else "no"),
            )
        )
    header = (
        "pruner",
        "epochs",
        "fewer epochs",
        "wall s",
        "less wall",
        "pruned trials",
        "best value",
        "gap to none",
        "target met",
    )
    config = result["config"]
    note = (
        f"Means over seeds {list(config['seeds'])}; {config['n_trials']} trials each, "
        f"{config['max_epochs']} max epochs, {config['dataset']} ({config['metric']}), "
        f"{config['n_workers']} workers, trainer {config['trainer']}. Gap = best value without "
        "pruning minus best value with it (positive: pruning lost that much)."
    )
    return markdown_table(header, rows) + "\n\n" + note
