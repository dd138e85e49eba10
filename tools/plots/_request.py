"""Everything one drawing needs, checked and computed once for both the PNG and the HTML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

import optuna

from tools.errors import NothingToShow
from tools.plots._data import TIMELINE_MAX_TRIALS, param_importances
from tools.plots._kinds import figure_inches, plot_title
from tools.plots._known_importances import KnownImportances
from tools.plots._problems import plot_problem
from tools.plots._training import TrainingCurves, training_curves
from tools.plots._trials import FrozenTrials, complete, contour_params


@dataclass(frozen=True)
class PlotRequest:
    study: optuna.Study
    kind: str
    metric: str
    title: str
    inches: tuple[float, float] = (9.0, 6.0)
    params: list[str] | None = None  # None: every param (optuna's default)
    importances: dict[str, float] = field(default_factory=dict)
    curves: TrainingCurves | None = None
    recent_trials: int | None = None  # timeline: only the latest trials


def prepare_plot(
    study: optuna.Study, kind: str, *, metric: str, history: Mapping[str, Any] | None = None
) -> PlotRequest:
    """Raises InvalidConfig for an unknown kind and NothingToShow when it cannot be drawn yet."""
    problem = plot_problem(study, kind, history)
    if problem:
        raise NothingToShow(problem)
    request = PlotRequest(
        study=study, kind=kind, metric=metric, title=plot_title(kind, study.study_name, metric)
    )
    if kind == "training_history":
        return replace(request, curves=training_curves(history))
    if kind == "param_importances":
        return replace(request, importances=param_importances(study))
    return _fit_to_trials(request, study.get_trials(deepcopy=False))


def _fit_to_trials(request: PlotRequest, trials: FrozenTrials) -> PlotRequest:
    kind = request.kind
    if kind == "contour":
        params = contour_params(complete(trials))
        return replace(request, params=params, inches=figure_inches(kind, len(params)))
    if kind == "slice":
        names = {name for trial in complete(trials) for name in trial.params}
        return replace(request, inches=figure_inches(kind, len(names)))
    request = replace(request, inches=figure_inches(kind, 0))
    if kind == "timeline" and len(trials) > TIMELINE_MAX_TRIALS:
        title = f"{request.title}, latest {TIMELINE_MAX_TRIALS} of {len(trials)} trials"
        return replace(request, title=title, recent_trials=TIMELINE_MAX_TRIALS)
    return request


def optuna_plot(module: ModuleType, request: PlotRequest) -> Any:
    """Calls `module.plot_{kind}`; optuna's matplotlib and plotly plots share arguments."""
    plot = getattr(module, f"plot_{request.kind}")
    return plot(request.study, **_optuna_arguments(request))


def _optuna_arguments(request: PlotRequest) -> dict[str, Any]:
    kind = request.kind
    if kind == "intermediate_values":
        return {}
    if kind == "timeline":
        return {"n_recent_trials": request.recent_trials}
    arguments: dict[str, Any] = {"target_name": request.metric}
    if kind == "param_importances":
        arguments["evaluator"] = KnownImportances(request.importances)
    if kind == "contour":
        arguments["params"] = request.params
    return arguments
