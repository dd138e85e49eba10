"""The numbers behind each plot, computed apart from drawing so they can be checked directly."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.importance import PedAnovaImportanceEvaluator
from optuna.study import StudyDirection

from tools.errors import NothingToShow
from tools.plots._problems import plot_problem
from tools.plots._session import drawing_session
from tools.plots._training import training_curves
from tools.plots._trials import FrozenTrials, complete, contour_params, with_curves

# The timeline draws one bar per trial; past this many only the latest are legible.
TIMELINE_MAX_TRIALS = 1000


def importance_evaluator() -> optuna.importance.BaseImportanceEvaluator:
    """Optuna's default evaluator, pinned: deterministic (no seed needed) and fast.

    fANOVA takes ~90 s on 5,000 trials where PED-ANOVA takes ~0.1 s, and
    PED-ANOVA also rates conditional params (lstm_units_2).
    """
    return PedAnovaImportanceEvaluator()


def param_importances(study: optuna.Study) -> dict[str, float]:
    """Importances normalised to sum to 1, most important first."""
    with drawing_session():
        raw = optuna.importance.get_param_importances(study, evaluator=importance_evaluator())
    return {name: float(value) for name, value in raw.items()}


def plot_data(
    study: optuna.Study, kind: str, history: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What `kind` shows, as plain numbers; NothingToShow / InvalidConfig like render_plot."""
    problem = plot_problem(study, kind, history)
    if problem:
        raise NothingToShow(problem)
    if kind == "training_history":
        return training_curves(history).as_dict()
    if kind == "param_importances":
        return {"importances": param_importances(study)}
    trials = study.get_trials(deepcopy=False)
    if kind == "optimization_history":
        return optimization_history(trials, study.direction)
    return _BY_KIND[kind](trials)


def optimization_history(trials: FrozenTrials, direction: StudyDirection) -> dict[str, Any]:
    done = sorted(complete(trials), key=lambda t: t.number)
    values = [float(t.value) for t in done if t.value is not None]
    better: Callable[[float, float], float] = max if direction == StudyDirection.MAXIMIZE else min
    return {
        "numbers": [t.number for t in done],
        "values": values,
        "best_so_far": list(itertools.accumulate(values, better)),
        "direction": direction.name.lower(),
    }


def _params_summary(trials: FrozenTrials) -> dict[str, Any]:
    done = complete(trials)
    return {
        "numbers": [t.number for t in done],
        "values": [t.value for t in done],
        "params": list(dict.fromkeys(name for t in done for name in t.params)),
    }


def _contour(trials: FrozenTrials) -> dict[str, Any]:
    return {**_params_summary(trials), "params": contour_params(complete(trials))}


def _intermediate_values(trials: FrozenTrials) -> dict[str, Any]:
    curves = with_curves(trials)
    return {
        "trials": {t.number: [v for _, v in sorted(t.intermediate_values.items())] for t in curves},
        "states": {t.number: t.state.name for t in curves},
    }


def _timeline(trials: FrozenTrials) -> dict[str, Any]:
    shown = trials[-TIMELINE_MAX_TRIALS:]
    return {
        "numbers": [t.number for t in shown],
        "states": [t.state.name for t in shown],
        "total": len(trials),
    }


_BY_KIND: dict[str, Callable[[FrozenTrials], dict[str, Any]]] = {
    "parallel_coordinate": _params_summary,
    "slice": _params_summary,
    "contour": _contour,
    "intermediate_values": _intermediate_values,
    "timeline": _timeline,
}
