"""Benchmark 5: tool latency on a big study, server startup and memory.

A study is created over MCP, then filled with thousands of finished trials
by opening its SQLite storage with plain Optuna (`study.add_trials`) so no
training is needed. Then `best_params`, `list_trials(limit=100)` and, when
the server lists it, `plot_history` are timed over stdio. Startup is spawn
-> `initialize` answered, repeated; RSS is the server's after those calls.
Finally `bench.hotspots` profiles the slow calls in-process (item 6).
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from mcp import Client

from bench import hotspots
from bench.common import (
    Stopwatch,
    markdown_table,
    median,
    percentile,
    shared_data_dir,
    target,
)
from bench.mcp_driver import BenchError, call, seqtune_server, storage_url, tool_names

NAME = "latency"
BEST_PARAMS_P95_TARGET_S = 0.050
STARTUP_TARGET_S = 1.5
STUDY = "scale"


@dataclass(frozen=True)
class LatencyConfig:
    n_trials: int = 5000
    repeats: int = 20
    plot_repeats: int = 5
    startup_repeats: int = 5
    max_epochs: int = 10
    dataset: str = "italypower_imbalanced.npz"
    seed: int = 5


CONFIGS = {
    "full": LatencyConfig(),
    "quick": LatencyConfig(n_trials=1000, repeats=20, plot_repeats=3, startup_repeats=3),
    "smoke": LatencyConfig(n_trials=30, repeats=3, plot_repeats=1, startup_repeats=1),
}


async def run(mode: str, scratch: Path, results_dir: Path) -> dict[str, Any]:
    config = CONFIGS[mode]
    workspace = scratch / "ws"
    startups = [await measure_startup(workspace) for _ in range(config.startup_repeats)]
    async with seqtune_server(workspace) as server:
        rss_idle = server.process().memory_info().rss / 2**20
        await call(server.client, "create_study", **study_arguments(config))
        with Stopwatch() as fill:
            add_synthetic_trials(workspace, config)
        calls = await time_tools(server.client, config)
        rss_loaded = server.process().memory_info().rss / 2**20
    profile = hotspots.profile(workspace, STUDY, shared_data_dir())
    return {
        "config": asdict(config),
        "startup_s": summary(startups),
        "fill_s": fill.seconds,
        "calls": calls,
        "rss_mb": {"idle": rss_idle, "after_calls": rss_loaded},
        "profile": profile,
        "targets": targets(calls, startups),
    }


async def measure_startup(workspace: Path) -> float:
    async with seqtune_server(workspace) as server:
        return server.startup_s


def study_arguments(config: LatencyConfig) -> dict[str, Any]:
    return {
        "study_name": STUDY,
        "dataset": config.dataset,
        "max_epochs": config.max_epochs,
        "seed": config.seed,
    }


def bilstm_distributions() -> dict[str, optuna.distributions.BaseDistribution]:
    """The default search space as Optuna distributions, as seqtune's sampling records them."""
    from tools.search_space import DEFAULT_SPACE

    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, spec in DEFAULT_SPACE.items():
        if spec.choices is not None:
            out[name] = optuna.distributions.CategoricalDistribution(spec.choices)
        else:
            assert spec.low is not None and spec.high is not None
            out[name] = optuna.distributions.FloatDistribution(spec.low, spec.high, log=spec.log)
    return out


def synthetic_trial(
    rng: random.Random, distributions: dict[str, Any], max_epochs: int
) -> optuna.trial.FrozenTrial:
    """A finished trial like seqtune records: params, curve, epochs, timings; some pruned/failed."""
    params = {
        name: rng.choice(d.choices)
        if isinstance(d, optuna.distributions.CategoricalDistribution)
        else d.low + (d.high - d.low) * rng.random()
        for name, d in distributions.items()
    }
    if not params["use_second_lstm"]:
        del params["lstm_units_2"]
    used = {name: distributions[name] for name in params}
    roll = rng.random()
    state = "COMPLETE" if roll < 0.7 else "PRUNED" if roll < 0.95 else "FAIL"
    epochs = max_epochs if state == "COMPLETE" else rng.randint(1, max_epochs - 1 or 1)
    ceiling = 0.5 + 0.45 * rng.random()
    curve = {e: ceiling * (1 - 0.5 ** (e + 1)) for e in range(epochs if state != "FAIL" else 0)}
    attrs: dict[str, Any] = {
        "epochs": epochs,
        "seconds": round(2 + epochs * rng.random(), 3),
        "timings": {"load_s": 0.001, "build_s": 0.2, "fit_s": epochs * 0.3, "trial_s": 3.0},
    }
    if state == "FAIL":
        attrs["fail_reason"] = "synthetic failure"
    return optuna.trial.create_trial(
        state=optuna.trial.TrialState[state],
        value=max(curve.values()) if state == "COMPLETE" else None,
        params=params,
        distributions=used,
        user_attrs=attrs,
        intermediate_values=curve,
    )


def add_synthetic_trials(workspace: Path, config: LatencyConfig) -> None:
    rng = random.Random(config.seed)
    distributions = bilstm_distributions()
    trials = [
        synthetic_trial(rng, distributions, config.max_epochs) for _ in range(config.n_trials)
    ]
    study = optuna.load_study(study_name=STUDY, storage=storage_url(workspace))
    study.add_trials(trials)


async def time_tools(client: Client, config: LatencyConfig) -> dict[str, Any]:
    calls = {
        "best_params": await time_calls(client, config.repeats, "best_params", study_name=STUDY),
        "list_trials": await time_calls(
            client, config.repeats, "list_trials", study_name=STUDY, limit=100
        ),
    }
    if "plot_history" in await tool_names(client):
        calls["plot_history"] = await time_calls(
            client,
            config.plot_repeats,
            "plot_history",
            study_name=STUDY,
            kind="optimization_history",
        )
    else:
        calls["plot_history"] = {"skipped": "the server lists no plot_history tool yet"}
    return calls


async def time_calls(client: Client, repeats: int, tool: str, **arguments: Any) -> dict[str, Any]:
    """One first (cold) call, then `repeats` timed calls over stdio."""
    first = await timed_call(client, tool, arguments)
    seconds = [await timed_call(client, tool, arguments) for _ in range(repeats)]
    return {"first_s": first, **summary(seconds)}


async def timed_call(client: Client, tool: str, arguments: dict[str, Any]) -> float:
    started = time.perf_counter()
    result = await client.call_tool(tool, arguments)
    elapsed = time.perf_counter() - started
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        raise BenchError(f"{tool} failed: {text}")
    return elapsed


def summary(seconds: list[float]) -> dict[str, Any]:
    return {
        "n": len(seconds),
        "p50_s": percentile(seconds, 50),
        "p95_s": percentile(seconds, 95),
        "max_s": max(seconds),
        "median_s": median(seconds),
    }


def targets(calls: dict[str, Any], startups: list[float]) -> dict[str, Any]:
    p95 = calls["best_params"]["p95_s"]
    startup = percentile(startups, 50)
    return {
        "best_params_p95": target(
            f"best_params p95 < {BEST_PARAMS_P95_TARGET_S * 1000:.0f} ms",
            p95,
            p95 < BEST_PARAMS_P95_TARGET_S,
        ),
        "startup": target(
            f"startup (spawn -> initialize) < {STARTUP_TARGET_S} s (median)",
            startup,
            startup < STARTUP_TARGET_S,
        ),
    }


def markdown(result: dict[str, Any]) -> str:
    n = result["config"]["n_trials"]
    rows: list[tuple[Any, ...]] = []
    for tool, stats in result["calls"].items():
        if "skipped" in stats:
            rows.append((tool, "-", "-", "-", stats["skipped"]))
            continue
        rows.append(
            (tool, ms(stats["first_s"]), ms(stats["p50_s"]), ms(stats["p95_s"]), stats["n"])
        )
    startup = result["startup_s"]
    rows.append(
        (
            "server startup (spawn -> initialize)",
            "-",
            ms(startup["p50_s"]),
            ms(startup["p95_s"]),
            startup["n"],
        )
    )
    table = markdown_table(("call over stdio", "first ms", "p50 ms", "p95 ms", "n"), rows)
    rss = result["rss_mb"]
    lines = [
        f"Study with {n} finished trials (70% complete, 25% pruned, 5% failed; "
        f"{result['config']['max_epochs']} intermediate values each), added with "
        f"`study.add_trials` in {result['fill_s']:.1f} s.",
        f"Server RSS: {rss['idle']:.0f} MB idle, {rss['after_calls']:.0f} MB after the calls.",
    ]
    return "\n\n".join([table, " ".join(lines), hotspots.markdown(result["profile"])])


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
