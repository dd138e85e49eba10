"""Shared test setup: make the repository's packages importable without installing them.

Also the fixtures the tool tests share: the anyio backend, a workspace in
tmp_path, a small .npz dataset written inside it, and helpers that look at
worker processes from the outside (psutil).
"""

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import optuna  # noqa: E402
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


# PostgreSQL: the tests that need a server take its URL from SEQTUNE_TEST_POSTGRES_URL
# (.ci/postgres.sh starts one and .ci/run sets it). Without it they skip, visibly,
# unless SEQTUNE_REQUIRE_POSTGRES=1 (CI) turns the skip into a failure.
POSTGRES_URL = os.environ.get("SEQTUNE_TEST_POSTGRES_URL", "")


def _no_postgres() -> None:
    reason = "no PostgreSQL server: set SEQTUNE_TEST_POSTGRES_URL (see .ci/postgres.sh)"
    if os.environ.get("SEQTUNE_REQUIRE_POSTGRES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL to a fresh, empty PostgreSQL database, dropped after the test."""
    if not POSTGRES_URL:
        _no_postgres()
    from bench.postgres import fresh_database

    with fresh_database(POSTGRES_URL, prefix="seqtune_test") as url:
        yield url


@pytest.fixture
def pg_ws(tmp_path: Path, postgres_url: str) -> Iterator[Workspace]:
    """A workspace whose storage is a fresh PostgreSQL database (artifacts in tmp_path)."""
    ws = Workspace(tmp_path / "ws", storage_url=postgres_url)
    yield ws
    ws.close()


def stored_trials(url: str, study_name: str = "s") -> list[optuna.trial.FrozenTrial]:
    """The study's trials as a fresh reader sees them (its connections closed after)."""
    storage = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=study_name, storage=storage).get_trials()
    finally:
        storage.engine.dispose()


@pytest.fixture
def pg_small_npz(pg_ws: Workspace) -> str:
    write_small_npz(pg_ws.root / "d.npz")
    return "d.npz"
