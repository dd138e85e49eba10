"""Writing plot files: atomic PNG and HTML, and one shared offline copy of plotly.js."""

from __future__ import annotations

import functools
import struct
from pathlib import Path

import plotly.graph_objects as go
import plotly.offline

from tools.atomic import write_bytes_atomic

PLOTLY_JS = "plotly.min.js"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from the PNG header, which always follows the signature."""
    if not png.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG image")
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def write_html(path: Path, fig: go.Figure, div_id: str) -> None:
    """A small page that loads plotly.js from beside it (works offline, no 4 MB per file)."""
    ensure_plotly_js(path.parent)
    html: str = fig.to_html(
        include_plotlyjs=PLOTLY_JS,
        full_html=True,
        div_id=div_id,  # a fixed id keeps the file identical for the same study state
        config={"responsive": True, "displaylogo": False},
    )
    write_bytes_atomic(path, html.encode("utf-8"))


def ensure_plotly_js(folder: Path) -> Path:
    """Writes plotly.min.js once per folder, and again when the installed plotly changes."""
    path = folder / PLOTLY_JS
    script = _plotly_js()
    if not path.is_file() or path.stat().st_size != len(script):
        write_bytes_atomic(path, script)
    return path


@functools.cache
def _plotly_js() -> bytes:
    source: str = plotly.offline.get_plotlyjs()
    return source.encode("utf-8")
