"""The baseline: the plain in-process Optuna loop a user writes from the guide.

`python -m bench.plain_loop SPEC.json OUT.json` runs `study.optimize(objective)`
in this one process with seqtune's model (`tools.model.build_model`), data
prepared once with `tools.data`, per-trial seeding, op determinism and the
thread count a single seqtune worker uses. It runs as a subprocess of the
benchmark so TensorFlow never shares a process with the MCP server's driver.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def configure_threads(threads: int) -> tuple[Any, Any]:
    """Same pinning as a seqtune worker: thread env before the import, then TF's pools."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
    tf.config.experimental.enable_op_determinism()
    return tf, keras


def prepare_data(spec: dict[str, Any]) -> Any:
    """Load and prepare the dataset once, exactly as `create_study` does."""
    from tools.data import load_dataset, prepare_dataset
    from tools.schemas import SplitSpec

    raw = load_dataset(spec["dataset"], (Path(spec["data_root"]),))
    return prepare_dataset(raw, split=SplitSpec(), imbalance=spec["imbalance"], seed=spec["seed"])


class EpochClock:
    """Seconds per epoch, to tell the first epoch (graph tracing) from the others."""

    def __init__(self, keras: Any) -> None:
        self.seconds: list[float] = []
        self._last = time.perf_counter()
        outer = self

        class Callback(keras.callbacks.Callback):  # type: ignore[misc]
            def on_train_begin(self, logs: Any = None) -> None:
                outer._last = time.perf_counter()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                now = time.perf_counter()
                outer.seconds.append(now - outer._last)
                outer._last = now

        self.callback = Callback()


def make_objective(data: Any, spec: dict[str, Any], keras: Any, max_epochs: int) -> Any:
    """The guide's objective: suggest, build, fit with EarlyStopping + pruning, best epoch."""
    from optuna_integration import TFKerasPruningCallback

    from tools.model import build_model
    from tools.search_space import resolve_search_space, suggest_params

    space = resolve_search_space(spec["search_space"])
    metric, maximize = spec["metric"], spec["direction"] == "maximize"

    def objective(trial: Any) -> float:
        started = time.perf_counter()
        params = suggest_params(trial, space)
        suggested = time.perf_counter()
        keras.backend.clear_session()
        keras.utils.set_random_seed(spec["seed"] + trial.number)
        reset = time.perf_counter()
        model = build_model(params, data.X_train.shape[1:], len(data.label_names))
        built = time.perf_counter()
        clock = EpochClock(keras)
        history = model.fit(
            data.X_train,
            data.y_train,
            validation_data=(data.X_val, data.y_val),
            epochs=max_epochs,
            batch_size=int(params["batch_size"]),
            class_weight=data.class_weight,
            callbacks=[
                keras.callbacks.EarlyStopping(
                    monitor=metric,
                    mode="max" if maximize else "min",
                    patience=spec["patience"],
                    restore_best_weights=True,
                ),
                TFKerasPruningCallback(trial, monitor=metric),
                clock.callback,
            ],
            verbose=0,
        )
        fitted = time.perf_counter()
        curve = [float(v) for v in history.history[metric]]
        timings = {
            "suggest_s": suggested - started,
            "reset_s": reset - suggested,
            "build_s": built - reset,
            "fit_s": fitted - built,
        }
        trial.set_user_attr("epochs", len(curve))
        trial.set_user_attr("epoch_s", clock.seconds)
        trial.set_user_attr("timings", timings)
        trial.set_user_attr("objective_s", time.perf_counter() - started)
        return max(curve) if maximize else min(curve)

    return objective


def optimize(spec: dict[str, Any], objective: Any, n_trials: int, seed: int) -> Any:
    """`study.optimize` with the sampler seqtune builds for this study (same seed)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=spec["n_startup_trials"], constant_liar=True
    )
    study = optuna.create_study(
        direction=spec["direction"], sampler=sampler, pruner=optuna.pruners.NopPruner()
    )
    study.optimize(objective, n_trials=n_trials)
    return study


def trial_rows(study: Any) -> list[dict[str, Any]]:
    rows = []
    for trial in study.trials:
        timings = dict(trial.user_attrs["timings"])
        timings["trial_s"] = trial.user_attrs["objective_s"]
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": trial.value,
                "params": trial.params,
                "epochs": trial.user_attrs["epochs"],
                "epoch_s": trial.user_attrs["epoch_s"],
                "timings": timings,
                "start": trial.datetime_start.timestamp(),
                "complete": trial.datetime_complete.timestamp(),
                "wall_s": (trial.datetime_complete - trial.datetime_start).total_seconds(),
            }
        )
    return rows


def main(argv: list[str]) -> None:
    spec_path, out_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    started = time.perf_counter()
    _, keras = configure_threads(spec["threads"])
    imported = time.perf_counter()
    data = prepare_data(spec)
    prepared = time.perf_counter()
    if spec.get("warmup", True):
        optimize(spec, make_objective(data, spec, keras, max_epochs=1), 1, spec["seed"])
    warmed = time.perf_counter()
    study = optimize(
        spec, make_objective(data, spec, keras, spec["max_epochs"]), spec["n_trials"], spec["seed"]
    )
    done = time.perf_counter()
    phases = {
        "import_s": imported - started,
        "data_s": prepared - imported,
        "warmup_s": warmed - prepared,
        "optimize_s": done - warmed,
        "in_process_s": done - started,
    }
    out_path.write_text(
        json.dumps({"phases": phases, "threads": spec["threads"], "trials": trial_rows(study)})
    )


if __name__ == "__main__":
    main(sys.argv[1:])
