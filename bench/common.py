"""What every benchmark shares: paths, modes, machine facts, statistics and result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / "bench"
MODES = ("full", "quick", "smoke")


def shared_data_dir() -> Path:
    """The UCR/UEA .npz files: $SEQTUNE_SHARED_DATA, else <repo>/../shared/data."""
    configured = os.environ.get("SEQTUNE_SHARED_DATA")
    folder = Path(configured) if configured else REPO.parent / "shared" / "data"
    if not (folder / "gunpoint.npz").is_file():
        raise FileNotFoundError(
            f"benchmark datasets not found in {folder}; set SEQTUNE_SHARED_DATA to the folder "
            "holding gunpoint.npz and italypower_imbalanced.npz"
        )
    return folder.resolve()


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    """Facts that make numbers comparable; versions read without importing TensorFlow."""
    return {
        "cores": cpu_count(),
        "cpu_model": cpu_model(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "tensorflow": package_version("tensorflow"),
        "keras": package_version("keras"),
        "optuna": package_version("optuna"),
        "mcp": package_version("mcp"),
        "platform": platform.platform(),
    }


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def mean(values: Iterable[float]) -> float:
    items = list(values)
    return float(statistics.fmean(items)) if items else 0.0


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return "-" if value is None else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def target(description: str, value: float | None, met: bool | None) -> dict[str, Any]:
    return {"target": description, "value": value, "met": met}


class Stopwatch:
    """`with Stopwatch() as watch: ...; watch.seconds`."""

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.seconds = time.perf_counter() - self.started


def command_line(argv: Sequence[str]) -> str:
    """The command that reproduces a run, as typed from the repository root."""
    return " ".join([".venv/bin/python", "-m", "bench.run_all", *argv])


def write_result(out_dir: Path, name: str, result: dict[str, Any], table: str) -> Path:
    """Write results/<name>.json (with the table inside) and results/<name>.md."""
    folder = out_dir / "results"
    folder.mkdir(parents=True, exist_ok=True)
    result = {**result, "table": table}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    (folder / f"{name}.md").write_text(table + "\n")
    return path
