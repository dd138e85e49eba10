"""The interactive side: optuna's plotly figures with the same titles and axis names as the PNG."""

from __future__ import annotations

import optuna.visualization as optuna_plotly
import plotly.graph_objects as go

from tools.plots._known_importances import KnownImportances
from tools.plots._request import PlotRequest
from tools.plots._session import drawing_session
from tools.plots._training import draw_training_plotly


def plotly_figure(request: PlotRequest) -> go.Figure:
    if request.curves is not None:
        return draw_training_plotly(request.curves, request.title)
    with drawing_session():
        fig = _optuna_figure(request)
    fig.update_layout(title={"text": request.title})
    _relabel(fig, request)
    return fig


def _optuna_figure(request: PlotRequest) -> go.Figure:
    study, kind, metric = request.study, request.kind, request.metric
    if kind == "optimization_history":
        return optuna_plotly.plot_optimization_history(study, target_name=metric)
    if kind == "param_importances":
        evaluator = KnownImportances(request.importances)
        return optuna_plotly.plot_param_importances(study, evaluator=evaluator, target_name=metric)
    if kind == "parallel_coordinate":
        return optuna_plotly.plot_parallel_coordinate(study, target_name=metric)
    if kind == "intermediate_values":
        return optuna_plotly.plot_intermediate_values(study)
    if kind == "slice":
        return optuna_plotly.plot_slice(study, target_name=metric)
    if kind == "contour":
        return optuna_plotly.plot_contour(study, params=request.params, target_name=metric)
    return optuna_plotly.plot_timeline(study, n_recent_trials=request.recent_trials)


def _relabel(fig: go.Figure, request: PlotRequest) -> None:
    if request.kind == "optimization_history":
        fig.update_xaxes(title_text="trial")
    elif request.kind == "param_importances":
        fig.update_xaxes(title_text=f"importance for {request.metric}")
    elif request.kind == "intermediate_values":
        fig.update_xaxes(title_text="epoch (step, from 0)")
        fig.update_yaxes(title_text=f"{request.metric} per epoch")
