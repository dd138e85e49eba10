"""Plots of a study and of its final training: PNG for the assistant, HTML for a browser.

No TensorFlow here: this runs in the server process. Modules: `_kinds` (names,
titles, sizes), `_trials` / `_problems` (what a plot needs), `_data` (the
numbers behind a plot), `_request` (one checked drawing job), `_matplotlib` /
`_plotly` / `_training` (the drawings), `_files` and `_render` (writing them).
"""

from tools.plots import _backend  # noqa: F401  (selects Agg before pyplot is imported)
from tools.plots._data import TIMELINE_MAX_TRIALS, plot_data
from tools.plots._files import PLOTLY_JS
from tools.plots._kinds import PLOT_KINDS, PlotFile, plot_title
from tools.plots._matplotlib import matplotlib_figure
from tools.plots._plotly import plotly_figure
from tools.plots._problems import plot_problem
from tools.plots._render import render_plot
from tools.plots._request import PlotRequest, prepare_plot

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
