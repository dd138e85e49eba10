"""Plots of a study and of its final training: PNG for the assistant, HTML for a browser.

No TensorFlow here: this runs in the server process. Modules: `_kinds` (names,
titles, sizes), `_trials` / `_problems` (what a plot needs), `_data` (the
numbers behind a plot), `_request` (one checked drawing job), `_matplotlib` /
`_plotly` / `_training` (the drawings), `_files` and `_render` (writing them).
"""

from importlib import import_module
from typing import Any

from tools.plots._kinds import PLOT_KINDS, PlotFile, plot_title

# Drawing pulls in matplotlib, plotly and optuna.importance (~0.4 s): load those parts on
# first use, so the server starts fast and `PLOT_KINDS` / `PlotFile` stay cheap to import.
_LAZY = {
    "TIMELINE_MAX_TRIALS": "_data",
    "plot_data": "_data",
    "PLOTLY_JS": "_files",
    "matplotlib_figure": "_matplotlib",
    "plotly_figure": "_plotly",
    "plot_problem": "_problems",
    "render_plot": "_render",
    "PlotRequest": "_request",
    "prepare_plot": "_request",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'tools.plots' has no attribute {name!r}")
    import_module("tools.plots._backend")  # selects Agg before pyplot is imported
    return getattr(import_module(f"tools.plots.{_LAZY[name]}"), name)


__all__ = [
    "PLOTLY_JS",
    "PLOT_KINDS",
    "TIMELINE_MAX_TRIALS",
    "PlotFile",
    "PlotRequest",
    "matplotlib_figure",
    "plot_data",
    "plot_problem",
    "plot_title",
    "plotly_figure",
    "prepare_plot",
    "render_plot",
]
