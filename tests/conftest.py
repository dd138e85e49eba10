"""Shared test setup: make the repository's packages importable without installing them.

Also the fixtures the tool tests share: the anyio backend, a workspace in
tmp_path, a small .npz dataset written inside it, and helpers that look at
worker processes from the outside (psutil).
"""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from tools.workspace import Workspace  # noqa: E402


@pytest.fixture
def anyio_backend() -> str:
    """anyio's pytest plugin runs `pytest.mark.anyio` tests on asyncio only."""
    return "asyncio"


def write_small_npz(path: Path, n: int = 120, seed: int = 0) -> Path:
    """A tiny imbalanced 2-class dataset (n, 8, 2), 1/3 minority: prepares in milliseconds."""
    rng = np.random.default_rng(seed)
    y = np.where(np.arange(n) < n // 3, "b", "a")
    X = rng.normal(size=(n, 8, 2)).astype(np.float32)
    X[y == "b"] += 0.5
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, X=X, y=y)
    return path


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """A fresh workspace (SQLite storage + artifacts) in tmp_path."""
    return Workspace(tmp_path / "ws")


@pytest.fixture
def small_npz(ws: Workspace) -> str:
    """A small dataset inside the workspace; returns the relative path a tool would receive."""
    write_small_npz(ws.root / "d.npz")
    return "d.npz"


def _worker_children() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=False):
        try:
            if "tools.worker" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return found


_workers_before_test: set[int] = set()


@pytest.fixture(autouse=True)
def _note_workers_alive_before_the_test() -> None:
    """Workers another test left behind must not be blamed on the current one."""
    _workers_before_test.clear()
    _workers_before_test.update(p.pid for p in _worker_children())


def worker_processes() -> list[psutil.Process]:
    """Live `python -m tools.worker` children of this process started during the current test."""
    return [p for p in _worker_children() if p.pid not in _workers_before_test]


def pid_alive(pid: int) -> bool:
    """True if `pid` runs and is not a zombie waiting to be reaped."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
