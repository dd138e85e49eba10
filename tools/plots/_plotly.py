"""The interactive side: optuna's plotly figures with the same titles and axis names as the PNG."""

from __future__ import annotations

import optuna.visualization as optuna_plotly
import plotly.graph_objects as go

from tools.plots._kinds import BEST_LABEL, OPTUNA_BEST_LABEL
from tools.plots._request import PlotRequest, optuna_plot
from tools.plots._session import drawing_session
from tools.plots._training import draw_training_plotly


def plotly_figure(request: PlotRequest) -> go.Figure:
    if request.curves is not None:
        return draw_training_plotly(request.curves, request.title)
    with drawing_session():
        fig: go.Figure = optuna_plot(optuna_plotly, request)
    fig.update_layout(title={"text": request.title})
    _relabel(fig, request)
    return fig


def _relabel(fig: go.Figure, request: PlotRequest) -> None:
    if request.kind == "optimization_history":
        fig.update_xaxes(title_text="trial")
        fig.update_traces(selector={"name": OPTUNA_BEST_LABEL}, name=BEST_LABEL)
    elif request.kind == "param_importances":
        fig.update_xaxes(title_text=f"importance for {request.metric}")
    elif request.kind == "intermediate_values":
        fig.update_xaxes(title_text="epoch (step, from 0)")
        fig.update_yaxes(title_text=f"{request.metric} per epoch")
