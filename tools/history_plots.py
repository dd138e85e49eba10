"""plot_history: draw one kind of plot, or every kind that can be drawn now."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tools.errors import InvalidConfig, NothingToShow
from tools.plots import PLOT_KINDS, PlotFile
from tools.retrain import load_history
from tools.studies import load_study
from tools.workspace import Workspace


class PlotReport(BaseModel):
    study_name: str
    plots: list[PlotFile]
    skipped: dict[str, str] = Field(
        default_factory=dict, description="Kinds not drawn (with 'all'), and why."
    )


def plot_history(ws: Workspace, study_name: str, kind: str) -> tuple[PlotReport, list[bytes]]:
    """PNG bytes for each plot drawn, with the report naming the PNG and HTML files."""
    from tools.plots import render_plot

    if kind != "all" and kind not in PLOT_KINDS:
        raise InvalidConfig(
            f"unknown plot kind '{kind}'; choose one of: all, {', '.join(PLOT_KINDS)}"
        )
    study, config = load_study(ws, study_name)
    history = load_history(ws, study_name)
    out_dir = ws.study_dir(study_name) / "plots"
    kinds = PLOT_KINDS if kind == "all" else (kind,)
    report, images = PlotReport(study_name=study_name, plots=[]), []
    for each in kinds:
        try:
            png, record = render_plot(study, each, out_dir, metric=config.metric, history=history)
        except NothingToShow as exc:
            if kind != "all":
                raise
            report.skipped[each] = str(exc)
            continue
        report.plots.append(record)
        images.append(png)
    if not report.plots:
        reasons = "; ".join(f"{k}: {why}" for k, why in report.skipped.items())
        raise NothingToShow(f"no plot can be drawn yet for study '{study_name}': {reasons}")
    return report, images
