"""The benchmarks at their smallest sizes (`python -m bench.run_all --smoke`), so they keep working.

One run of all six (about 110 s): the overhead benchmark trains for real
(1 trial, 1 epoch, in a plain subprocess and in a seqtune worker); scaling,
pruning, samplers and dask use the fake trainer (dask on a real PostgreSQL and
real `dask scheduler`/`dask worker` processes); latency needs no training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import run_all

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    assert run_all.main(["--smoke", "--out", str(out)]) == 0
    return out


def result(out: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "results" / f"{name}.json").read_text())
    assert data["benchmark"] == name and data["mode"] == "smoke"
    assert data["machine"]["cores"] >= 1 and data["duration_s"] > 0
    assert (out / "results" / f"{name}.md").read_text().startswith("|")
    return data


def test_overhead(bench_out: Path) -> None:
    data = result(bench_out, "overhead")
    assert data["plain"]["optimize_s"] > 0 and data["seqtune"]["run_wall_s"] > 0
    assert 0.2 < data["ratio"] < 20
    assert data["seqtune"]["startup_s"] > 0
    assert data["seqtune"]["worker_cold_start"]["tf_import_s"] > 0
    per_trial = data["seqtune"]["per_trial"]
    assert per_trial["fit_s"] > 0 and per_trial["storage_protocol_s"] >= 0
    values = data["values"]
    assert values["n_compared"] == data["config"]["n_trials"]
    assert values["identical"], values["per_trial"]  # same seeds, determinism on


def test_scaling(bench_out: Path) -> None:
    data = result(bench_out, "scaling")
    labels = [s["label"] for s in data["setups"]]
    assert labels == ["1 worker, pinning on", "2 workers, pinning on", "2 workers, pinning off"]
    assert all(s["trials_per_hour"] > 0 for s in data["setups"])
    assert data["speedup_2_workers"] > 0


def test_pruning(bench_out: Path) -> None:
    data = result(bench_out, "pruning")
    assert set(data["per_pruner"]) == {"none", "median", "successive_halving", "hyperband"}
    assert len(data["runs"]) == 4 * len(data["config"]["seeds"])
    for run in data["runs"]:
        assert run["epochs"] >= data["config"]["n_trials"]
        assert run["complete"] + run["pruned"] + run["failed"] == data["config"]["n_trials"]
    assert data["per_pruner"]["none"]["epoch_saving"] == 0


def test_samplers(bench_out: Path) -> None:
    data = result(bench_out, "samplers")
    assert {row["sampler"] for row in data["medians"]} >= {"tpe", "random", "qmc"}
    for curve in data["curves"]:
        values = [v for v in curve["best_so_far"] if v is not None]
        assert values == sorted(values)  # best so far never gets worse
    ran = {row["sampler"] for row in data["medians"]}
    assert ran | set(data["skipped"]) == {"tpe", "random", "qmc", "gp", "cmaes"}
    assert all(reason.startswith("skipped: needs") for reason in data["skipped"].values())
    assert Path(data["png"]).read_bytes().startswith(b"\x89PNG")


def test_latency(bench_out: Path) -> None:
    data = result(bench_out, "latency")
    for tool in ("best_params", "list_trials"):
        stats = data["calls"][tool]
        assert 0 < stats["p50_s"] <= stats["p95_s"] < 30
    assert data["startup_s"]["p50_s"] > 0
    assert data["rss_mb"]["after_calls"] > 10
    assert data["profile"]["same_answers"]
    assert data["profile"]["startup_imports"]["heaviest"]


def test_dask(bench_out: Path) -> None:
    data = result(bench_out, "dask")
    labels = [s["label"] for s in data["setups"]]
    assert labels == ["dask, 1 worker", "dask, 2 workers", "local, 2 workers"]
    assert all(s["trials_per_hour"] > 0 for s in data["setups"])
    assert [s["workers_used"] for s in data["setups"]] == [1, 2, 0]
    assert data["speedup_2_dask_workers"] > 0


def test_results_md(bench_out: Path) -> None:
    text = (bench_out / "RESULTS.md").read_text()
    assert "SMOKE mode" in text and "--smoke" in text
    titles = (
        "Overhead",
        "Parallel scaling",
        "Pruning",
        "Samplers",
        "latency",
        "Scale-out",
        "limits",
    )
    for title in titles:
        assert title in text
