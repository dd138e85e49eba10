"""The real thing end to end: `seqtune serve` over stdio, real workers, real Keras training.

One tiny study on builtin:gait goes through create -> run (2 workers, pruning)
-> best_params -> retrain_and_evaluate -> predict, and the saved model is
checked against the reported metrics in this (test) process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from tests.stdio_client import call, call_error, server_processes, stdio_server
from tools.plots import PLOT_KINDS

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TOOLS = {
    "create_study",
    "run_trials",
    "best_params",
    "list_studies",
    "describe_dataset",
    "get_run",
    "cancel_run",
    "list_trials",
    "delete_study",
    "retrain_and_evaluate",
    "predict",
    "plot_history",
}
# Small and fast, with one config that cannot learn (lr 1e-5) so the median pruner has
# something to prune once the good ones have reported.
TINY_SPACE: dict[str, Any] = {
    "lstm_units_1": [16],
    "use_second_lstm": False,
    "dense_units": [16],
    "batch_size": [64],
    "optimizer_choice": "adam",
    "learning_rate": {"low": 1e-5, "high": 3e-3, "log": True},
}
GOOD = {
    "lstm_units_1": 16,
    "dense_units": 16,
    "batch_size": 64,
    "dropout_rate": 0.2,
    "learning_rate": 3e-3,
}
BAD = {**GOOD, "learning_rate": 1e-5, "dropout_rate": 0.5}


def tiny_study(name: str, **overrides: Any) -> dict[str, Any]:
    return {
        "study_name": name,
        "dataset": "builtin:gait",
        "metric": "val_loss",
        "max_epochs": 6,
        "patience": 6,
        "search_space": TINY_SPACE,
        "seed": 3,
        "pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 1},
        **overrides,
    }


def tensorflow_loaded(pid: int) -> bool:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "tensorflow" in maps or "_pywrap_tensorflow" in maps


async def test_full_flow_over_stdio(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    errlog = tmp_path / "server.stderr"
    async with stdio_server(ws, "--workers", "2", errlog=errlog) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert set(listed) >= TOOLS
        for tool in listed.values():
            assert tool.input_schema and tool.output_schema and tool.annotations, tool.name

        created = await call(client, "create_study", **tiny_study("flow"))
        assert created["splits"]["test"]["n"] == 72
        assert created["direction"] == "minimize"

        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, total, message))

        result = await client.call_tool(
            "run_trials",
            {
                "study_name": "flow",
                "n_trials": 6,
                "n_workers": 2,
                "wait_s": 600,
                "enqueue": [GOOD, {**GOOD, "dropout_rate": 0.3, "learning_rate": 2e-3}, BAD, BAD],
            },
            progress_callback=on_progress,
        )
        assert not result.is_error, result.content
        run = result.structured_content
        assert run is not None
        assert run["state"] == "completed" and run["finished"] == 6
        counts = run["counts"]
        assert counts["RUNNING"] == 0
        assert counts["COMPLETE"] + counts["PRUNED"] + counts["FAIL"] == 6
        assert counts["PRUNED"] >= 1, run["new_trials"]
        finished = [p for p in progress if "/6)" in (p[2] or "")]
        assert [p[0] for p in finished] == sorted(p[0] for p in finished)
        assert finished[-1][0] == 6 and finished[-1][1] == 6
        assert any("pruned" in (p[2] or "") for p in progress)

        best = await call(client, "best_params", study_name="flow")
        assert best["best_value"] == run["best_value"]
        assert best["params"]["lstm_units_1"] == 16
        assert "lstm_units_2" not in best["params"]

        final = await call(
            client, "retrain_and_evaluate", study_name="flow", max_epochs=8, patience=4
        )
        check_final_metrics(final)
        again = await call(client, "retrain_and_evaluate", study_name="flow", max_epochs=2)
        assert again["test_evaluations"] == 2 and "2 times" in again["warnings"][0]
        check_saved_model(ws, "flow", again)

        await check_plots(client, ws)

        X_new = np.random.default_rng(0).normal(size=(5, 64, 3)).astype(np.float32)
        np.savez(ws / "new.npz", X=X_new)
        predicted = await call(client, "predict", study_name="flow", dataset="new.npz")
        assert predicted["n"] == 5 and sum(predicted["label_counts"].values()) == 5
        assert Path(predicted["csv_path"]).read_text().count("\n") == 6
        np.savez(ws / "wrong.npz", X=X_new[:, :10])
        assert "trained on 64 x 3" in await call_error(
            client, "predict", study_name="flow", dataset="wrong.npz"
        )

        (server,) = server_processes()
        assert not tensorflow_loaded(server.pid), "the server process loaded TensorFlow"

    assert "database is locked" not in errlog.read_text()
    storage = f"sqlite:///{ws / 'seqtune.db'}"
    study = optuna.load_study(study_name="flow", storage=storage)
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in study.trials)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert all(t.intermediate_values for t in pruned)


async def check_plots(client: Any, ws: Path) -> None:
    """Every kind comes back as a PNG the assistant can see, plus an interactive HTML file."""
    import base64
    import io

    import matplotlib.image

    result = await client.call_tool("plot_history", {"study_name": "flow", "kind": "all"})
    assert not result.is_error, result.content
    report = result.structured_content
    assert [p["kind"] for p in report["plots"]] == list(PLOT_KINDS), report["skipped"]
    images = [c for c in result.content if c.type == "image"]
    assert len(images) == len(PLOT_KINDS)
    for image, plot in zip(images, report["plots"], strict=True):
        assert image.mime_type == "image/png"
        pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(image.data)), format="png")
        assert pixels.shape[0] == plot["height"] >= 400 and pixels.shape[1] == plot["width"] >= 600
        html = Path(plot["html_path"]).read_text()
        assert "Plotly.newPlot" in html and "plotly.min.js" in html
        assert "flow" in plot["title"] and "val_loss" in plot["title"]
    assert (ws / "studies" / "flow" / "plots" / "plotly.min.js").is_file()


def check_final_metrics(final: dict[str, Any]) -> None:
    test = final["test"]
    matrix = np.array(test["confusion_matrix"])
    assert matrix.sum() == test["n"] == 72
    assert test["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    tp = matrix[1, 1]
    assert test["recall"] == pytest.approx(tp / matrix[1].sum())
    if matrix[:, 1].sum():
        assert test["precision"] == pytest.approx(tp / matrix[:, 1].sum())
    assert test["positive_class"] == "asymmetric"
    assert final["tuned_threshold"]["val"]["f1"] >= final["val"]["f1"] - 1e-9
    assert final["test_evaluations"] == 1 and final["warnings"] == []
    for path in final["artifacts"].values():
        assert Path(path).is_file(), path


def check_saved_model(ws: Path, study: str, final: dict[str, Any]) -> None:
    """model.keras reproduces the reported test accuracy and confusion matrix."""
    import keras

    model = keras.models.load_model(final["artifacts"]["model"])
    with np.load(ws / "studies" / study / "data" / "test.npz") as data:
        X_test, y_test = data["X"], data["y"]
    predicted = (model.predict(X_test, verbose=0).reshape(-1) >= 0.5).astype(int)
    assert np.mean(predicted == y_test) == pytest.approx(final["test"]["accuracy"])
    matrix = np.zeros((2, 2), dtype=int)
    np.add.at(matrix, (y_test, predicted), 1)
    assert matrix.tolist() == final["test"]["confusion_matrix"]
