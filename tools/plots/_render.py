"""render_plot: draw one plot as PNG (for the assistant to see) and HTML (for a browser)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from tools.atomic import write_bytes_atomic
from tools.plots._files import png_size, write_html
from tools.plots._kinds import PlotFile
from tools.plots._matplotlib import matplotlib_figure, png_bytes
from tools.plots._plotly import plotly_figure
from tools.plots._request import prepare_plot


def render_plot(
    study: optuna.Study,
    kind: str,
    out_dir: Path,
    *,
    metric: str,
    history: Mapping[str, Any] | None = None,
) -> tuple[bytes, PlotFile]:
    """Writes out_dir/{kind}.png and out_dir/{kind}.html; returns the PNG bytes and their record.

    Raises InvalidConfig for an unknown kind, NothingToShow (with what to do) when the
    study cannot show this plot yet. Both drawings are made before either file is
    written, so a failure never leaves a new PNG beside a stale HTML.
    """
    request = prepare_plot(study, kind, metric=metric, history=history)
    with matplotlib_figure(request) as fig:
        png = png_bytes(fig)
    page = plotly_figure(request)
    png_path, html_path = out_dir / f"{kind}.png", out_dir / f"{kind}.html"
    write_bytes_atomic(png_path, png)
    write_html(html_path, page, div_id=f"seqtune-{kind}")
    width, height = png_size(png)
    record = PlotFile(
        kind=kind,
        title=request.title,
        png_path=str(png_path),
        html_path=str(html_path),
        width=width,
        height=height,
    )
    return png, record
