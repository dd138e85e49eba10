"""Benchmark 4: best value so far after each trial, per sampler, dataset and seed.

Samplers tpe, random and qmc always; gp and cmaes when their packages import
in the server (else recorded as skipped). Cheap trials (few epochs, small
LSTMs) with no pruning, so the curves show the samplers alone.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import markdown_table, median
from bench.mcp_driver import BenchError, call, run_to_end, seqtune_server, stored_trials, warm_up

NAME = "samplers"
SAMPLERS = ("tpe", "random", "qmc", "gp", "cmaes")
DATASETS = (
    ("italypower_imbalanced.npz", "val_auc"),
    ("gunpoint.npz", "val_auc"),
)
_MISSING_PACKAGE = re.compile(r"needs the '([\w.-]+)' package")
SPACE: dict[str, Any] = {
    "lstm_units_1": [16, 32],
    "use_second_lstm": False,
    "dense_units": [16, 32, 48, 64],
    "dropout_rate": {"low": 0.2, "high": 0.5},
    "learning_rate": {"low": 1e-5, "high": 1e-2, "log": True},
    "optimizer_choice": ["adam", "rmsprop"],
    "batch_size": [32, 64],
}


@dataclass(frozen=True)
class SamplersConfig:
    n_trials: int = 40
    checkpoints: tuple[int, ...] = (10, 20, 40)
    max_epochs: int = 4
    patience: int = 2
    seeds: tuple[int, ...] = (1, 2, 3)
    n_workers: int = 2
    n_startup_trials: int = 10
    trainer: str = "keras"
    samplers: tuple[str, ...] = SAMPLERS
    datasets: tuple[tuple[str, str], ...] = DATASETS
    search_space: dict[str, Any] = field(default_factory=lambda: dict(SPACE))


CONFIGS = {
    "full": SamplersConfig(),
    "quick": SamplersConfig(
        n_trials=6,
        checkpoints=(2, 4, 6),
        max_epochs=3,
        seeds=(1,),
        n_startup_trials=2,
        datasets=DATASETS[:1],
    ),
    "smoke": SamplersConfig(
        n_trials=2,
        checkpoints=(1, 2),
        max_epochs=1,
        seeds=(1,),
        n_startup_trials=1,
        trainer="fake",
        datasets=DATASETS[:1],
    ),
}


async def run(mode: str, scratch: Path, results_dir: Path) -> dict[str, Any]:
    config = CONFIGS[mode]
    png_path = results_dir / "samplers.png"
    workspace = scratch / "ws"
    curves: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    async with seqtune_server(workspace, trainer=config.trainer) as server:
        await warm_up(server.client, config.n_workers, config.datasets[0][0])
        for sampler in config.samplers:
            try:
                curves += await run_sampler(server.client, workspace, config, sampler)
            except SamplerMissing as exc:
                skipped[sampler] = str(exc)
    if curves:
        draw_curves(config, curves, png_path)
    return {
        "config": asdict(config),
        "skipped": skipped,
        "curves": curves,
        "medians": summarise(config, curves),
        "png": str(png_path) if curves else None,
    }


class SamplerMissing(Exception):
    """The server cannot build this sampler: its optional package is not installed."""


async def run_sampler(
    client: Any, workspace: Path, config: SamplersConfig, sampler: str
) -> list[dict[str, Any]]:
    curves = []
    for dataset, metric in config.datasets:
        for seed in config.seeds:
            name = f"samplers-{sampler}-{Path(dataset).stem}-s{seed}"
            await create_or_skip(
                client, study_arguments(config, name, sampler, dataset, metric, seed)
            )
            _, wall = await run_to_end(client, name, config.n_trials, config.n_workers)
            curves.append(study_curve(workspace, name, sampler, dataset, seed, wall))
    return curves


async def create_or_skip(client: Any, arguments: dict[str, Any]) -> None:
    try:
        await call(client, "create_study", **arguments)
    except BenchError as exc:
        missing = _MISSING_PACKAGE.search(str(exc))
        if missing is None:
            raise
        raise SamplerMissing(f"skipped: needs {missing[1]}") from exc


def study_arguments(
    config: SamplersConfig, name: str, sampler: str, dataset: str, metric: str, seed: int
) -> dict[str, Any]:
    return {
        "study_name": name,
        "dataset": dataset,
        "metric": metric,
        "sampler": sampler,
        "n_startup_trials": config.n_startup_trials,
        "pruner": "none",
        "search_space": config.search_space,
        "max_epochs": config.max_epochs,
        "patience": config.patience,
        "seed": seed,
    }


def best_so_far(values: list[float | None]) -> list[float | None]:
    """Running maximum by trial number; None until the first completed trial."""
    curve: list[float | None] = []
    best: float | None = None
    for value in values:
        if value is not None:
            best = value if best is None else max(best, value)
        curve.append(best)
    return curve


def study_curve(
    workspace: Path, name: str, sampler: str, dataset: str, seed: int, wall: float
) -> dict[str, Any]:
    trials = stored_trials(workspace, name)
    return {
        "sampler": sampler,
        "dataset": dataset,
        "seed": seed,
        "wall_s": wall,
        "best_so_far": best_so_far([t.value for t in trials]),
    }


def summarise(config: SamplersConfig, curves: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median over seeds of the best value after k trials, per sampler and dataset."""
    rows = []
    for dataset, _ in config.datasets:
        for sampler in config.samplers:
            mine = [c for c in curves if c["sampler"] == sampler and c["dataset"] == dataset]
            if not mine:
                continue
            at = {}
            for k in config.checkpoints:
                values = [c["best_so_far"][k - 1] for c in mine if len(c["best_so_far"]) >= k]
                present = [v for v in values if v is not None]
                at[str(k)] = median(present) if present else None
            rows.append(
                {
                    "dataset": dataset,
                    "sampler": sampler,
                    "median_at": at,
                    "wall_s": sum(c["wall_s"] for c in mine),
                    "seeds": len(mine),
                }
            )
    return rows


def median_curve(curves: list[dict[str, Any]]) -> list[float | None]:
    length = min(len(c["best_so_far"]) for c in curves)
    out: list[float | None] = []
    for i in range(length):
        present = [c["best_so_far"][i] for c in curves if c["best_so_far"][i] is not None]
        out.append(median(present) if present else None)
    return out


def draw_curves(config: SamplersConfig, curves: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d, _ in config.datasets]
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for axis, (dataset, metric) in zip(axes[0], config.datasets, strict=True):
        for sampler in config.samplers:
            mine = [c for c in curves if c["sampler"] == sampler and c["dataset"] == dataset]
            if mine:
                curve = median_curve(mine)
                axis.plot(range(1, len(curve) + 1), curve, label=sampler, marker=".")
        seeds = len(config.seeds)
        axis.set_title(f"{dataset}: median of {seeds} seed{'s' if seeds > 1 else ''}")
        axis.set_xlabel("trial")
        axis.set_ylabel(f"best {metric} so far")
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(result: dict[str, Any]) -> str:
    checkpoints = [str(k) for k in result["config"]["checkpoints"]]
    rows = [
        (
            row["dataset"],
            row["sampler"],
            *[row["median_at"][k] for k in checkpoints],
            round(row["wall_s"], 1),
        )
        for row in result["medians"]
    ]
    for sampler, reason in result["skipped"].items():
        rows.append(("all", sampler, *["-" for _ in checkpoints], reason))
    header = (
        "dataset",
        "sampler",
        *[f"median best @{k}" for k in checkpoints],
        "wall s (all seeds)",
    )
    config = result["config"]
    note = (
        f"{config['n_trials']} trials x seeds {list(config['seeds'])}, {config['max_epochs']} "
        f"max epochs (patience {config['patience']}), no pruning, {config['n_workers']} workers, "
        f"trainer {config['trainer']}."
    )
    if result.get("png"):
        note += f" Curves: `{Path(result['png']).name}`."
    return markdown_table(header, rows) + "\n\n" + note
