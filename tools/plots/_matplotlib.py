"""The PNG side: optuna's matplotlib plots on the Agg backend, retitled and resized.

Optuna's matplotlib plots go through pyplot (and switch its style), so each
drawing runs in a `drawing_session` and restores rcParams afterwards. Figures
are closed on the way out. The Agg backend is selected in `_backend`, which
`tools.plots` imports first.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib
import numpy as np
import optuna.visualization.matplotlib as optuna_mpl
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter

from tools.plots._kinds import BEST_LABEL, DPI, OPTUNA_BEST_LABEL
from tools.plots._request import PlotRequest, optuna_plot
from tools.plots._session import drawing_session
from tools.plots._training import draw_training_matplotlib

# Past this many curves a per-trial legend covers the plot and says nothing.
_MAX_LEGEND_CURVES = 12


@contextmanager
def matplotlib_figure(request: PlotRequest) -> Iterator[Figure]:
    """The finished figure for `request`; closed when the block ends."""
    with drawing_session(), matplotlib.rc_context():
        plt.style.use("ggplot")
        before = set(plt.get_fignums())
        try:
            fig = _draw(request)
            yield fig
        finally:
            for number in set(plt.get_fignums()) - before:
                plt.close(number)


def png_bytes(fig: Figure) -> bytes:
    try:
        return _saved(fig)
    except (ZeroDivisionError, ValueError):
        # Constrained layout cannot solve some grids (e.g. a 2-param contour with a
        # collapsed axis): fall back to fixed margins rather than fail the plot.
        fig.set_layout_engine("none")
        fig.subplots_adjust(left=0.1, right=0.88, bottom=0.12, top=0.88, wspace=0.3, hspace=0.3)
        return _saved(fig)


def _saved(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _draw(request: PlotRequest) -> Figure:
    if request.curves is not None:
        return draw_training_matplotlib(request.curves, request.title)
    fig = _figure_of(optuna_plot(optuna_mpl, request))
    for ax in fig.axes:  # optuna's generic titles; the figure title says more
        for loc in ("left", "center", "right"):
            ax.set_title("", loc=loc)
    fig.suptitle(request.title, fontsize=14)
    fig.set_size_inches(*request.inches)
    _relabel(fig, request)
    _lay_out(fig, request.kind)
    return fig


def _lay_out(fig: Figure, kind: str) -> None:
    if kind != "parallel_coordinate":
        fig.set_layout_engine("constrained")
        return
    # Its per-param axes are placed by hand, which constrained layout cannot solve.
    fig.subplots_adjust(left=0.06, right=0.9, bottom=0.2, top=0.88)
    for ax in fig.axes:
        ax.yaxis.set_minor_formatter(NullFormatter())  # log-axis minor labels overlap


def _figure_of(axes: Any) -> Figure:
    first = axes.flat[0] if isinstance(axes, np.ndarray) else axes
    figure: Figure = first.figure
    return figure


def _relabel(fig: Figure, request: PlotRequest) -> None:
    ax = fig.axes[0]
    if request.kind == "optimization_history":
        ax.set_xlabel("trial")
        legend = ax.get_legend()
        for text in legend.get_texts() if legend is not None else []:
            if text.get_text() == OPTUNA_BEST_LABEL:
                text.set_text(BEST_LABEL)
    elif request.kind == "param_importances":
        ax.set_xlabel(f"importance for {request.metric}")
    elif request.kind == "intermediate_values":
        ax.set_xlabel("epoch (step, from 0)")
        ax.set_ylabel(f"{request.metric} per epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        legend = ax.get_legend()
        if legend is not None and len(ax.get_lines()) > _MAX_LEGEND_CURVES:
            legend.remove()
