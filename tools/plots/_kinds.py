"""The plot kinds, their titles and sizes, and the file record of a drawn plot."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tools.errors import InvalidConfig

PLOT_KINDS: tuple[str, ...] = (
    "optimization_history",
    "param_importances",
    "parallel_coordinate",
    "intermediate_values",
    "slice",
    "contour",
    "timeline",
    "training_history",
)

_TITLES = {
    "optimization_history": "Optimization history",
    "param_importances": "Hyperparameter importances",
    "parallel_coordinate": "Parallel coordinates",
    "intermediate_values": "Intermediate values",
    "slice": "Slice plot",
    "contour": "Contour plot",
    "timeline": "Timeline",
    "training_history": "Training history",
}

DPI = 100
OPTUNA_BEST_LABEL = "Best Value"
BEST_LABEL = "best so far"
# Figure sizes in inches at DPI; slice and contour grow with their number of params.
_SIZES = {
    "optimization_history": (9.0, 6.0),
    "param_importances": (9.0, 6.0),
    "parallel_coordinate": (13.0, 6.5),
    "intermediate_values": (10.0, 6.0),
    "contour": (9.0, 7.0),
    "timeline": (11.0, 7.0),
}
_SLICE_INCHES_PER_PARAM = 3.0
_MAX_INCHES = 24.0


class PlotFile(BaseModel):
    """One drawn plot: a PNG to look at and an interactive HTML file beside it."""

    kind: str
    title: str
    png_path: str
    html_path: str
    width: int = Field(description="PNG width in pixels.")
    height: int = Field(description="PNG height in pixels.")


def check_kind(kind: str) -> str:
    if kind not in PLOT_KINDS:
        raise InvalidConfig(f"unknown plot kind {kind!r}; choose one of: {', '.join(PLOT_KINDS)}")
    return kind


def plot_title(kind: str, study_name: str, metric: str) -> str:
    """E.g. "Optimization history: gait-demo (val_accuracy)"."""
    return f"{_TITLES[check_kind(kind)]}: {study_name} ({metric})"


def figure_inches(kind: str, n_params: int) -> tuple[float, float]:
    if kind == "slice":
        width = min(max(9.0, _SLICE_INCHES_PER_PARAM * n_params + 1.0), _MAX_INCHES)
        return width, 5.0
    if kind == "contour" and n_params > 2:
        side = min(3.2 * n_params + 1.5, _MAX_INCHES)
        return side + 1.0, side
    return _SIZES[kind]
