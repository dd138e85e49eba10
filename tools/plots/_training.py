"""Curves of the final training (loss and metrics per epoch, train vs val), drawn both ways.

`history` is the dict the final training saves: {"metrics": {"loss": [...],
"val_loss": [...], ...}, "monitor": "val_loss", "best_epoch": k (0-based),
"stopped_epoch": ...}.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from plotly.subplots import make_subplots

from tools.errors import NothingToShow

_LEARNING_RATE_KEYS = ("learning_rate", "lr")
_LEARNING_RATE = "learning rate"
_COLORS = {"train": "#1f77b4", "val": "#ff7f0e", _LEARNING_RATE: "#2ca02c"}
_BEST_COLOR = "#555555"
_PANEL_INCHES = (6.0, 3.6)

Panels = dict[str, dict[str, list[float]]]


@dataclass(frozen=True)
class TrainingCurves:
    panels: Panels  # panel name -> series name ("train", "val", ...) -> value per epoch
    best_epoch: int | None  # 1-based
    monitor: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "epochs": list(range(1, _n_epochs(self.panels) + 1)),
            "panels": self.panels,
            "best_epoch": self.best_epoch,
            "monitor": self.monitor,
        }


def training_problem(history: Mapping[str, Any] | None) -> str | None:
    if history is None:
        return "training_history needs a final model: call retrain_and_evaluate first"
    if not _panels(history.get("metrics")):
        return (
            "training_history found no per-epoch metrics in the saved training history: "
            "call retrain_and_evaluate again"
        )
    return None


def training_curves(history: Mapping[str, Any] | None) -> TrainingCurves:
    problem = training_problem(history)
    if problem or history is None:
        raise NothingToShow(problem)
    panels = _panels(history.get("metrics"))
    return TrainingCurves(
        panels=panels,
        best_epoch=_best_epoch(history.get("best_epoch"), panels),
        monitor=str(history.get("monitor") or "val_loss"),
    )


def _best_epoch(zero_based: Any, panels: Panels) -> int | None:
    """1-based, or None when the history holds none within its epochs."""
    if isinstance(zero_based, int) and not isinstance(zero_based, bool):
        return zero_based + 1 if 0 <= zero_based < _n_epochs(panels) else None
    return None


def _n_epochs(panels: Panels) -> int:
    return max(len(values) for series in panels.values() for values in series.values())


def _floats(values: Any) -> list[float] | None:
    """A JSON list of numbers (None and NaN become NaN), or None when it is not one."""
    if not isinstance(values, list) or not values:
        return None
    if not all(v is None or _is_number(v) for v in values):
        return None
    return [math.nan if v is None else float(v) for v in values]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _panels(metrics: Any) -> Panels:
    """Loss first, then each metric with its val_ twin, then the learning rate."""
    if not isinstance(metrics, Mapping):
        return {}
    series: dict[str, list[float]] = {}
    for name, values in metrics.items():
        if (floats := _floats(values)) is not None:
            series[str(name)] = floats
    rates = [series.pop(key) for key in _LEARNING_RATE_KEYS if key in series]
    bases = dict.fromkeys(name.removeprefix("val_") for name in series)
    panels: Panels = {}
    for base in sorted(bases, key=lambda base: base != "loss"):
        pair = {"train": series.get(base), "val": series.get(f"val_{base}")}
        panels[base] = {split: values for split, values in pair.items() if values is not None}
    if rates:
        panels[_LEARNING_RATE] = {_LEARNING_RATE: rates[0]}
    return panels


def _grid(n_panels: int) -> tuple[int, int]:
    cols = 1 if n_panels == 1 else 2
    return math.ceil(n_panels / cols), cols


def _best_label(curves: TrainingCurves) -> str:
    return f"best epoch {curves.best_epoch} ({curves.monitor})"


def _log_scale(panel: str, series: dict[str, list[float]]) -> bool:
    return panel == _LEARNING_RATE and all(v > 0 for vs in series.values() for v in vs)


def draw_training_matplotlib(curves: TrainingCurves, title: str) -> Figure:
    """A figure outside pyplot's registry: nothing to close, safe beside other figures."""
    rows, cols = _grid(len(curves.panels))
    width, height = _PANEL_INCHES
    fig = Figure(figsize=(width * cols, height * rows + 0.6), layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax, (panel, series) in zip(axes, curves.panels.items(), strict=False):
        _draw_panel(ax, panel, series, curves)
    for ax in axes[len(curves.panels) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=14)
    return fig


def _draw_panel(
    ax: Axes, panel: str, series: dict[str, list[float]], curves: TrainingCurves
) -> None:
    for name, values in series.items():
        epochs = range(1, len(values) + 1)
        ax.plot(epochs, values, label=name, color=_COLORS.get(name), marker=".", linewidth=1.5)
    if curves.best_epoch is not None:
        ax.axvline(curves.best_epoch, color=_BEST_COLOR, linestyle="--", label=_best_label(curves))
    if _log_scale(panel, series):
        ax.set_yscale("log")
    ax.set_title(panel)
    ax.set_xlabel("epoch")
    ax.set_ylabel(panel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="best", fontsize="small")


def draw_training_plotly(curves: TrainingCurves, title: str) -> go.Figure:
    rows, cols = _grid(len(curves.panels))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(curves.panels))
    for i, (panel, series) in enumerate(curves.panels.items()):
        row, col = divmod(i, cols)
        for name, values in series.items():
            trace = go.Scatter(
                x=list(range(1, len(values) + 1)),
                y=values,
                name=name,
                legendgroup=name,
                showlegend=i == 0 or name == _LEARNING_RATE,
                mode="lines+markers",
                line={"color": _COLORS.get(name)},
            )
            fig.add_trace(trace, row=row + 1, col=col + 1)
        fig.update_xaxes(title_text="epoch", row=row + 1, col=col + 1)
        log = "log" if _log_scale(panel, series) else "linear"
        fig.update_yaxes(title_text=panel, type=log, row=row + 1, col=col + 1)
        if curves.best_epoch is not None:
            fig.add_vline(
                x=curves.best_epoch,
                line_dash="dash",
                line_color=_BEST_COLOR,
                annotation_text=_best_label(curves) if i == 0 else None,
                row=row + 1,
                col=col + 1,
            )
    fig.update_layout(title={"text": title}, height=320 * rows + 120)
    return fig
