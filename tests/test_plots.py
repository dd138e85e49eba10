"""Plots on real Optuna studies: every kind draws, refuses helpfully, and its numbers hold."""

from __future__ import annotations

import itertools
import math
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import matplotlib.image
import optuna
import pytest
from matplotlib import pyplot as plt
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from tools.errors import InvalidConfig, NothingToShow
from tools.plots import (
    PLOT_KINDS,
    PLOTLY_JS,
    TIMELINE_MAX_TRIALS,
    PlotFile,
    matplotlib_figure,
    plot_data,
    plot_problem,
    plotly_figure,
    prepare_plot,
    render_plot,
)
from tools.search_space import DEFAULT_SPACE, ParamSpec

METRIC = "val_accuracy"
STUDY = "gait-demo"
EPOCHS = 6
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HISTORY: dict[str, Any] = {
    "metrics": {
        "loss": [1.0, 0.7, 0.5, 0.45, 0.44, 0.46],
        "val_loss": [1.1, 0.8, 0.6, 0.55, 0.57, 0.6],
        "accuracy": [0.5, 0.6, 0.7, 0.75, 0.78, 0.8],
        "val_accuracy": [0.5, 0.58, 0.66, 0.7, 0.69, 0.68],
        "learning_rate": [1e-3, 1e-3, 1e-3, 1e-3, 5e-4, 5e-4],
    },
    "monitor": "val_loss",
    "best_epoch": 3,
    "stopped_epoch": 5,
}

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _distribution(spec: ParamSpec) -> BaseDistribution:
    if spec.choices is not None:
        return CategoricalDistribution(spec.choices)
    assert spec.low is not None and spec.high is not None
    return FloatDistribution(spec.low, spec.high, log=spec.log)


DISTRIBUTIONS = {name: _distribution(spec) for name, spec in DEFAULT_SPACE.items()}


def _sample(rng: random.Random) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, dist in DISTRIBUTIONS.items():
        if name == "lstm_units_2" and not params["use_second_lstm"]:
            continue  # conditional, as in the real search space
        if isinstance(dist, CategoricalDistribution):
            params[name] = rng.choice(dist.choices)
        elif isinstance(dist, FloatDistribution) and dist.log:
            params[name] = math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))
        elif isinstance(dist, FloatDistribution):
            params[name] = rng.uniform(dist.low, dist.high)
    return params


def make_trial(rng: random.Random, state: TrialState = TrialState.COMPLETE) -> FrozenTrial:
    """A BiLSTM-like trial whose score mostly follows the learning rate."""
    params = _sample(rng)
    final = 0.5 + 0.1 * math.log10(params["learning_rate"] / 1e-5) + rng.gauss(0, 0.02)
    epochs = 2 if state == TrialState.PRUNED else EPOCHS
    curve = {step: final * (step + 1) / EPOCHS for step in range(epochs)}
    return create_trial(
        state=state,
        value=final if state == TrialState.COMPLETE else None,
        params=params,
        distributions={name: DISTRIBUTIONS[name] for name in params},
        intermediate_values=curve if state != TrialState.FAIL else {},
    )


def make_trials(n: int, seed: int = 0) -> list[FrozenTrial]:
    rng = random.Random(seed)
    return [
        make_trial(rng, TrialState.PRUNED if i % 4 == 3 else TrialState.COMPLETE) for i in range(n)
    ]


Direction = Literal["maximize", "minimize"]


def sqlite_study(
    folder: Path, direction: Direction = "maximize", name: str = STUDY
) -> optuna.Study:
    return optuna.create_study(
        storage=f"sqlite:///{folder}/t.db", study_name=name, direction=direction
    )


def start_running_trial(study: optuna.Study) -> optuna.Trial:
    trial = study.ask()
    trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True)
    trial.report(0.4, 0)
    return trial


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> optuna.Study:
    """30 finished trials (some PRUNED), one FAIL and one RUNNING: a run still going."""
    built = sqlite_study(tmp_path_factory.mktemp("study"))
    built.add_trials(make_trials(30))
    built.add_trial(make_trial(random.Random(99), TrialState.FAIL))
    start_running_trial(built)
    return built


def render(study: optuna.Study, kind: str, out: Path) -> tuple[bytes, PlotFile]:
    return render_plot(study, kind, out, metric=METRIC, history=HISTORY)


# --- drawing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", PLOT_KINDS)
def test_every_kind_draws_a_png_and_an_offline_html(
    study: optuna.Study, kind: str, tmp_path: Path
) -> None:
    png, record = render(study, kind, tmp_path)

    assert png.startswith(PNG_SIGNATURE)
    pixels = matplotlib.image.imread(record.png_path)
    height, width = pixels.shape[:2]
    assert (record.width, record.height) == (width, height)
    assert width > 300 and height > 300
    assert Path(record.png_path) == tmp_path / f"{kind}.png"
    assert Path(record.png_path).read_bytes() == png
    assert METRIC in record.title and STUDY in record.title

    html = Path(record.html_path).read_text()
    assert Path(record.html_path) == tmp_path / f"{kind}.html"
    assert "plotly" in html and "Plotly.newPlot" in html
    assert f'src="{PLOTLY_JS}"' in html
    assert record.title in html
    assert len(html) < 1_000_000  # plotly.js is shared, not inlined
    assert (tmp_path / PLOTLY_JS).stat().st_size > 1_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{kind}.png", f"{kind}.html", PLOTLY_JS]
    )  # no temp files left behind


def test_plotly_js_is_written_once_and_repaired_when_damaged(
    study: optuna.Study, tmp_path: Path
) -> None:
    render(study, "optimization_history", tmp_path)
    script = tmp_path / PLOTLY_JS
    size, written_at = script.stat().st_size, script.stat().st_mtime_ns
    render(study, "intermediate_values", tmp_path)
    assert script.stat().st_mtime_ns == written_at

    script.write_text("truncated")
    render(study, "optimization_history", tmp_path)
    assert script.stat().st_size == size


def test_rendering_again_keeps_one_file_per_kind_and_leaks_no_figures(
    study: optuna.Study, tmp_path: Path
) -> None:
    open_before = plt.get_fignums()
    for _ in range(2):
        for kind in ("optimization_history", "intermediate_values"):
            render(study, kind, tmp_path)
    assert plt.get_fignums() == open_before
    assert len(list(tmp_path.iterdir())) == 5


def test_titles_and_axes_name_the_metric(study: optuna.Study) -> None:
    for kind in PLOT_KINDS:
        request = prepare_plot(study, kind, metric=METRIC, history=HISTORY)
        with matplotlib_figure(request) as fig:
            assert fig.get_suptitle() == request.title
            labels = [ax.get_ylabel() for ax in fig.axes] + [ax.get_xlabel() for ax in fig.axes]
        assert "Objective Value" not in labels, kind
        assert plotly_figure(request).layout.title.text == request.title

    history = prepare_plot(study, "optimization_history", metric=METRIC)
    with matplotlib_figure(history) as fig:
        assert fig.axes[0].get_ylabel() == METRIC
    curves = prepare_plot(study, "intermediate_values", metric=METRIC)
    with matplotlib_figure(curves) as fig:
        assert METRIC in fig.axes[0].get_ylabel()
    assert METRIC in plotly_figure(curves).layout.yaxis.title.text


def test_training_history_marks_the_best_epoch(study: optuna.Study) -> None:
    request = prepare_plot(study, "training_history", metric=METRIC, history=HISTORY)
    with matplotlib_figure(request) as fig:
        visible = [ax for ax in fig.axes if ax.get_visible()]
        assert [ax.get_ylabel() for ax in visible] == ["loss", "accuracy", "learning rate"]
        assert all(ax.get_xlabel() == "epoch" for ax in visible)
        legend = visible[0].get_legend()
        assert legend is not None
        texts = [t.get_text() for t in legend.get_texts()]
    assert texts == ["train", "val", "best epoch 4 (val_loss)"]


def test_drawing_from_several_threads_at_once(study: optuna.Study, tmp_path: Path) -> None:
    kinds = ["optimization_history", "intermediate_values"] * 2
    open_before = plt.get_fignums()
    with ThreadPoolExecutor(max_workers=4) as pool:
        records = list(
            pool.map(lambda i: render(study, kinds[i], tmp_path / str(i))[1], range(len(kinds)))
        )
    assert [r.kind for r in records] == kinds
    assert all(Path(r.png_path).stat().st_size > 0 for r in records)
    assert plt.get_fignums() == open_before


def test_a_one_trial_study_draws_without_warnings(tmp_path: Path) -> None:
    # A param with a single value makes matplotlib warn about singular limits.
    single = sqlite_study(tmp_path)
    single.add_trial(make_trial(random.Random(0)))
    for kind in ("slice", "parallel_coordinate"):
        png, _ = render_plot(single, kind, tmp_path / "plots", metric=METRIC)
        assert png.startswith(PNG_SIGNATURE)


def test_a_5000_trial_study_draws_its_optimization_history(tmp_path: Path) -> None:
    # In memory: SQLite inserts cost ~10 ms a trial, 50 s for this study.
    big = optuna.create_study(study_name="big", direction="maximize")
    big.add_trials(make_trials(5000, seed=1))

    png, record = render_plot(big, "optimization_history", tmp_path, metric=METRIC)

    assert png.startswith(PNG_SIGNATURE) and record.width > 300
    assert len(plot_data(big, "optimization_history")["numbers"]) == 3750
    timeline = plot_data(big, "timeline")
    assert len(timeline["numbers"]) == TIMELINE_MAX_TRIALS and timeline["total"] == 5000
    title = prepare_plot(big, "timeline", metric=METRIC).title
    assert f"latest {TIMELINE_MAX_TRIALS} of 5000 trials" in title


# --- refusing --------------------------------------------------------------------------------


def test_a_contour_of_exactly_two_varying_params_draws(tmp_path: Path) -> None:
    """Constrained layout cannot solve this grid; the drawing falls back to fixed margins."""
    two = sqlite_study(tmp_path, direction="minimize")
    distributions = {
        "dropout_rate": FloatDistribution(0.2, 0.5),
        "learning_rate": FloatDistribution(1e-5, 3e-3, log=True),
        "lstm_units_1": CategoricalDistribution([16]),
    }
    for i, (dropout, lr) in enumerate([(0.31, 2e-3), (0.38, 5e-4), (0.42, 3e-4)]):
        two.add_trial(
            optuna.trial.create_trial(
                params={"dropout_rate": dropout, "learning_rate": lr, "lstm_units_1": 16},
                distributions=distributions,
                value=0.3 - 0.03 * i,
            )
        )
    png, record = render_plot(two, "contour", tmp_path / "out", metric="val_loss")
    assert png.startswith(b"\x89PNG") and record.width > 300


def test_an_empty_study_shows_nothing_yet(tmp_path: Path) -> None:
    empty = sqlite_study(tmp_path)
    for kind in PLOT_KINDS:
        problem = plot_problem(empty, kind, HISTORY if kind == "training_history" else None)
        if kind == "training_history":
            assert problem is None  # the final training does not need trials here
            continue
        assert problem is not None and kind in problem and "run trials" in problem
        with pytest.raises(NothingToShow, match="run trials"):
            render_plot(empty, kind, tmp_path / "plots", metric=METRIC)
    assert not (tmp_path / "plots").exists()


@pytest.mark.parametrize("kind", ["param_importances", "contour"])
def test_one_complete_trial_is_not_enough_for(kind: str, tmp_path: Path) -> None:
    single = sqlite_study(tmp_path)
    single.add_trial(make_trial(random.Random(0)))
    expected = "needs at least 2 complete trials; the study has 1: run more trials"
    assert plot_problem(single, kind, None) == f"{kind} {expected}"
    with pytest.raises(NothingToShow, match=expected):
        render_plot(single, kind, tmp_path, metric=METRIC)
    assert plot_problem(single, "optimization_history", None) is None


def test_only_running_trials_suggest_waiting(tmp_path: Path) -> None:
    live = sqlite_study(tmp_path)
    start_running_trial(live)
    problem = plot_problem(live, "optimization_history", None)
    assert problem is not None and "(1 running)" in problem and "wait" in problem
    assert plot_problem(live, "timeline", None) is None
    assert plot_problem(live, "intermediate_values", None) is None


def test_identical_scores_give_no_importances(tmp_path: Path) -> None:
    flat = sqlite_study(tmp_path)
    for trial in make_trials(6):
        if trial.state == TrialState.COMPLETE:
            flat.add_trial(
                create_trial(value=0.5, params=trial.params, distributions=trial.distributions)
            )
    problem = plot_problem(flat, "param_importances", None)
    assert problem is not None and "different finite values" in problem


def test_training_history_needs_a_final_model(study: optuna.Study, tmp_path: Path) -> None:
    message = "training_history needs a final model: call retrain_and_evaluate first"
    assert plot_problem(study, "training_history", None) == message
    with pytest.raises(NothingToShow, match="call retrain_and_evaluate first"):
        render_plot(study, "training_history", tmp_path, metric=METRIC)
    broken = {"metrics": {"loss": "not a list"}, "best_epoch": 0}
    with pytest.raises(NothingToShow, match="no per-epoch metrics"):
        render_plot(study, "training_history", tmp_path, metric=METRIC, history=broken)


def test_an_unknown_kind_lists_the_known_ones(study: optuna.Study, tmp_path: Path) -> None:
    for call in (
        lambda: render_plot(study, "pareto_front", tmp_path, metric=METRIC),
        lambda: plot_problem(study, "pareto_front", None),
        lambda: plot_data(study, "pareto_front"),
    ):
        with pytest.raises(InvalidConfig, match="optimization_history, param_importances"):
            call()


# --- the numbers behind the plots ------------------------------------------------------------


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_best_so_far_only_improves(direction: Direction, tmp_path: Path) -> None:
    scored = sqlite_study(tmp_path, direction)
    scored.add_trials(make_trials(24, seed=3))
    start_running_trial(scored)

    data = plot_data(scored, "optimization_history")

    complete = scored.get_trials(states=(TrialState.COMPLETE,))
    assert data["numbers"] == [t.number for t in complete]
    assert data["values"] == [t.value for t in complete]
    best = data["best_so_far"]
    pairs = list(itertools.pairwise(best))
    if direction == "maximize":
        assert all(a <= b for a, b in pairs) and best[-1] == max(data["values"])
    else:
        assert all(a >= b for a, b in pairs) and best[-1] == min(data["values"])


def test_importances_sum_to_one_and_repeat(study: optuna.Study) -> None:
    first = plot_data(study, "param_importances")["importances"]
    second = plot_data(study, "param_importances")["importances"]

    assert first == second
    assert math.isclose(sum(first.values()), 1.0, abs_tol=1e-6)
    assert set(first) <= set(DEFAULT_SPACE)
    assert max(first, key=first.__getitem__) == "learning_rate"


def test_intermediate_values_follow_each_trial(study: optuna.Study) -> None:
    data = plot_data(study, "intermediate_values")
    states = data["states"]
    assert "FAIL" not in states.values()
    running = [n for n, s in states.items() if s == "RUNNING"]
    assert len(running) == 1 and data["trials"][running[0]] == [0.4]  # a live curve
    pruned = [n for n, s in states.items() if s == "PRUNED"]
    assert pruned and all(len(data["trials"][n]) == 2 for n in pruned)
    assert all(len(data["trials"][n]) == EPOCHS for n, s in states.items() if s == "COMPLETE")


def test_summaries_of_the_other_kinds(study: optuna.Study) -> None:
    n_complete = len(study.get_trials(states=(TrialState.COMPLETE,)))
    assert len(plot_data(study, "slice")["numbers"]) == n_complete
    assert set(plot_data(study, "parallel_coordinate")["params"]) == set(DEFAULT_SPACE)
    contour = plot_data(study, "contour")["params"]
    assert contour == ["dropout_rate", "learning_rate", "lstm_units_1"]  # numeric first
    timeline = plot_data(study, "timeline")
    assert timeline["states"].count("RUNNING") == 1 and timeline["total"] == len(study.trials)


def test_training_history_data_pairs_train_with_val(study: optuna.Study) -> None:
    data = plot_data(study, "training_history", HISTORY)
    assert data["epochs"] == [1, 2, 3, 4, 5, 6]
    assert list(data["panels"]) == ["loss", "accuracy", "learning rate"]
    assert data["panels"]["loss"] == {
        "train": HISTORY["metrics"]["loss"],
        "val": HISTORY["metrics"]["val_loss"],
    }
    assert data["best_epoch"] == 4 and data["monitor"] == "val_loss"
