"""Hostile and broken input through the MCP tools: each call succeeds or returns a clear
error, the server keeps answering, nothing is written outside the workspace, and the study
database stays intact. Uses the fake trainer (real worker processes, drawn learning curves).
"""

from __future__ import annotations

import sqlite3
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from server.app import create_server
from server.settings import Settings
from tests.conftest import write_small_npz

TOOLS = (
    "describe_dataset",
    "create_study",
    "run_trials",
    "get_run",
    "cancel_run",
    "best_params",
    "list_trials",
    "list_studies",
    "delete_study",
    "retrain_and_evaluate",
    "predict",
    "plot_history",
)
HOSTILE_STRINGS = (
    "s",
    "",
    "..",
    "../outside.npz",
    "/etc/passwd",
    "/etc/passwd.npz",
    "a/b",
    "a\\b",
    "s\x00x",
    "builtin:nope",
    "builtin:gait",
    "escape.npz",
    "pickled.npz",
    "truncated.npz",
    "nan.npz",
    "huge.npz",
    "d.npz",
    "x" * 300,
    "'; DROP TABLE studies; --",
    "ümlaut",
    "CON",
    "studies",
    "seqtune.db",
)
ARGUMENT_NAMES = (
    "study_name",
    "dataset",
    "run_id",
    "kind",
    "n_trials",
    "n_workers",
    "timeout_s",
    "wait_s",
    "metric",
    "sampler",
    "pruner",
    "search_space",
    "imbalance",
    "max_epochs",
    "patience",
    "split",
    "seed",
    "enqueue",
    "states",
    "limit",
    "trial_number",
    "csv",
    "format",
    "bogus",
)
leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(HOSTILE_STRINGS),
    st.text(max_size=20),
)
values = st.recursive(
    leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
arguments = st.dictionaries(st.sampled_from(ARGUMENT_NAMES), values, max_size=6)


def hostile_files(ws: Path, outside: Path) -> None:
    write_small_npz(ws / "d.npz")
    np.savez(ws / "pickled.npz", X=np.array([{"a": 1}] * 12, dtype=object), y=np.zeros(12))
    whole = (ws / "d.npz").read_bytes()
    (ws / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    X = np.zeros((20, 8, 2), dtype=np.float32)
    X[3, 2, 1] = np.nan
    np.savez(ws / "nan.npz", X=X, y=np.array(["a", "b"] * 10))
    with zipfile.ZipFile(ws / "huge.npz", "w") as archive:
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 10), }"
        magic = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
        archive.writestr("X.npy", magic + b"\n")
        archive.writestr("y.npy", magic + b"\n")
    write_small_npz(outside / "secret.npz")
    (ws / "escape.npz").symlink_to(outside / "secret.npz")


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[BlockingPortal, Client, Path]]:
    root = tmp_path_factory.mktemp("hostile")
    ws, outside = root / "ws", root / "outside"
    ws.mkdir()
    outside.mkdir()
    hostile_files(ws, outside)
    server = create_server(Settings(workspace=ws, trainer="fake", default_wait_s=0))
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(Client(server, read_timeout_seconds=60)) as client,
    ):
        portal.call(
            lambda: client.call_tool("create_study", {"study_name": "s", "dataset": "d.npz"})
        )
        yield portal, client, root


def call(served: tuple[BlockingPortal, Client, Path], tool: str, args: dict[str, Any]) -> Any:
    portal, client, _ = served
    return portal.call(lambda: client.call_tool(tool, args))


def tame(tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """Keep background work small: no waiting, and tiny budgets when a run would start."""
    if tool in ("run_trials", "get_run"):
        args["wait_s"] = 0
    if tool == "run_trials":
        for key, cap in (("n_trials", 2), ("n_workers", 1)):
            if isinstance(args.get(key), int) and not isinstance(args[key], bool):
                args[key] = min(args[key], cap)
    if tool == "retrain_and_evaluate":
        args["max_epochs"] = 1
    return args


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(tool=st.sampled_from(TOOLS), args=arguments)
def test_random_arguments_get_a_result_or_a_clear_error(
    served: tuple[BlockingPortal, Client, Path], tool: str, args: dict[str, Any]
) -> None:
    result = call(served, tool, tame(tool, args))
    if result.is_error:
        text = result.content[0].text
        assert text.startswith(f"Error executing tool {tool}"), text
        assert "Traceback" not in text
    else:
        assert result.structured_content is not None


def test_after_the_barrage_the_server_and_database_are_fine(
    served: tuple[BlockingPortal, Client, Path],
) -> None:
    result = call(served, "list_studies", {})
    assert not result.is_error
    _, _, root = served
    with sqlite3.connect(root / "ws" / "seqtune.db") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert sorted(p.name for p in root.iterdir()) == ["outside", "ws"]
    assert sorted(p.name for p in (root / "outside").iterdir()) == ["secret.npz"]


BROKEN = [
    ("../outside/secret.npz", "outside"),
    (str(Path("/etc/passwd.npz")), "outside"),
    ("escape.npz", "outside"),
    ("missing.npz", "not found"),
    ("pickled.npz", "pickle"),
    ("truncated.npz", "cannot read"),
    ("nan.npz", "NaN"),
    ("huge.npz", "at most 200,000,000"),
    ("builtin:nope", "builtin:gait"),
]


@pytest.mark.parametrize(("dataset", "expected"), BROKEN)
def test_broken_datasets_are_refused_without_side_effects(
    served: tuple[BlockingPortal, Client, Path], dataset: str, expected: str
) -> None:
    _, _, root = served
    studies_before = sorted(p.name for p in (root / "ws" / "studies").iterdir())
    for tool, args in (
        ("describe_dataset", {"dataset": dataset}),
        ("create_study", {"study_name": "broken", "dataset": dataset}),
    ):
        result = call(served, tool, args)
        assert result.is_error
        assert expected.lower() in result.content[0].text.lower(), result.content[0].text
    assert sorted(p.name for p in (root / "ws" / "studies").iterdir()) == studies_before
    listed = call(served, "list_studies", {}).structured_content
    assert "broken" not in [s["study_name"] for s in listed["studies"]]
