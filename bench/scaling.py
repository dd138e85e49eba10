"""Benchmark 2: trials per hour with 1 and 2 workers, CPU pinning on and off.

Every trial trains the same fixed configuration (all hyperparameters fixed
in the search space, EarlyStopping patience = max_epochs) so trials are
comparable. Each setup gets its own server (the pinning switch is server
configuration: SEQTUNE_PIN_CPUS) and warm workers before the timed run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import markdown_table, mean, target
from bench.mcp_driver import (
    call,
    run_to_end,
    seqtune_server,
    stored_trials,
    trial_record,
    warm_up,
)

NAME = "scaling"
SPEEDUP_TARGET = 1.6
FIXED_SPACE: dict[str, Any] = {
    "lstm_units_1": 32,
    "use_second_lstm": False,
    "dense_units": 32,
    "dropout_rate": {"value": 0.3},
    "learning_rate": {"value": 1e-3},
    "optimizer_choice": "adam",
    "batch_size": 32,
}


@dataclass(frozen=True)
class Setup:
    n_workers: int
    pin_cpus: bool

    @property
    def label(self) -> str:
        return f"{self.n_workers} worker{'s' if self.n_workers > 1 else ''}, pinning " + (
            "on" if self.pin_cpus else "off"
        )


@dataclass(frozen=True)
class ScalingConfig:
    n_trials: int = 10
    max_epochs: int = 4
    dataset: str = "builtin:gait"
    trainer: str = "keras"
    seed: int = 11
    setups: tuple[Setup, ...] = field(
        default_factory=lambda: (Setup(1, True), Setup(2, True), Setup(2, False))
    )


CONFIGS = {
    "full": ScalingConfig(),
    "quick": ScalingConfig(n_trials=4, max_epochs=3),
    "smoke": ScalingConfig(n_trials=2, max_epochs=1, trainer="fake"),
}


async def run(mode: str, scratch: Path, results_dir: Path) -> dict[str, Any]:
    config = CONFIGS[mode]
    setups = [
        await run_setup(config, setup, scratch / f"setup{i}")
        for i, setup in enumerate(config.setups)
    ]
    return {"config": asdict(config), **summarise(setups)}


async def run_setup(config: ScalingConfig, setup: Setup, folder: Path) -> dict[str, Any]:
    workspace = folder / "ws"
    env = {"SEQTUNE_PIN_CPUS": "1" if setup.pin_cpus else "0"}
    async with seqtune_server(workspace, trainer=config.trainer, env=env) as server:
        await warm_up(server.client, setup.n_workers, config.dataset)
        await call(server.client, "create_study", **study_arguments(config))
        _, wall = await run_to_end(server.client, "scaling", config.n_trials, setup.n_workers)
        starts = server.worker_starts()
    trials = [trial_record(t) for t in stored_trials(workspace, "scaling")]
    span = max(t["complete"] for t in trials) - min(t["start"] for t in trials)
    return {
        "setup": asdict(setup),
        "label": setup.label,
        "wall_s": wall,
        "trials_per_hour": config.n_trials / wall * 3600,
        "trials_per_hour_in_span": config.n_trials / span * 3600,
        "mean_trial_wall_s": mean(t["wall_s"] for t in trials),
        "mean_fit_s": mean(t["timings"].get("fit_s", 0.0) for t in trials),
        "worker_starts": starts,
    }


def study_arguments(config: Any, name: str = "scaling") -> dict[str, Any]:
    """One fixed configuration, trained for max_epochs with no early stop or pruning."""
    return {
        "study_name": name,
        "dataset": config.dataset,
        "metric": "val_loss",
        "pruner": "none",
        "search_space": FIXED_SPACE,
        "max_epochs": config.max_epochs,
        "patience": config.max_epochs,
        "seed": config.seed,
    }


def summarise(setups: list[dict[str, Any]]) -> dict[str, Any]:
    pinned = next((s for s in setups[1:] if s["setup"]["pin_cpus"]), None)
    return speedup_summary(
        setups,
        pinned,
        "speedup_2_workers",
        f"2 workers >= {SPEEDUP_TARGET}x the trials/hour of 1 worker (pinning on)",
    )


def speedup_summary(
    setups: list[dict[str, Any]], compared: dict[str, Any] | None, key: str, description: str
) -> dict[str, Any]:
    """Each setup's trials/hour against the first's; the target checks `compared`."""
    base = setups[0]["trials_per_hour"]
    for setup in setups:
        setup["speedup"] = setup["trials_per_hour"] / base
    speedup = compared["speedup"] if compared else None
    met = None if speedup is None else speedup >= SPEEDUP_TARGET
    return {
        "setups": setups,
        key: speedup,
        "targets": {"speedup": target(description, speedup, met)},
    }


def markdown(result: dict[str, Any]) -> str:
    rows = [
        (
            s["label"],
            round(s["wall_s"], 1),
            round(s["trials_per_hour"]),
            round(s["trials_per_hour_in_span"]),
            f"{s['speedup']:.2f}x",
            round(s["mean_trial_wall_s"], 2),
            round(s["mean_fit_s"], 2),
        )
        for s in result["setups"]
    ]
    header = (
        "setup",
        "run wall s",
        "trials/hour",
        "trials/hour (first start to last end)",
        "speedup",
        "trial wall s",
        "model.fit s",
    )
    config = result["config"]
    note = (
        f"{config['n_trials']} trials of one fixed config ({config['dataset']}, "
        f"{config['max_epochs']} epochs, trainer {config['trainer']}); warm workers."
    )
    return markdown_table(header, rows) + "\n\n" + note + slowdown_note(result["setups"])


def slowdown_note(setups: list[dict[str, Any]]) -> str:
    """Why the speedup is what it is: how much longer one trial takes with half the cores."""
    one = setups[0]["mean_trial_wall_s"]
    notes = []
    for setup in setups[1:]:
        slower = setup["mean_trial_wall_s"] / one if one else 0.0
        if slower:
            notes.append(
                f"With {setup['label'].replace(', ', ' (')}), a trial took {slower:.2f}x as "
                "long as with 1 worker (which uses every core), so the speedup cannot pass "
                f"{setup['setup']['n_workers'] / slower:.2f}x."
            )
    return (" " + " ".join(notes)) if notes else ""
