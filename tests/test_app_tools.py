"""The MCP tools, resources and prompt, through an in-memory MCP client.

The server is `server.app.create_server(Settings(trainer="fake", ...))`: runs
use the fake trainer (tools/fake_trainer.py) in real worker subprocesses over
the real pipe protocol. Workers inherit the test's environment, so
SEQTUNE_FAKE_EPOCH_SECONDS (slower epochs) and SEQTUNE_FAKE_FAULTS (faults
per trial number) are set with monkeypatch.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import optuna
import pytest
from conftest import worker_processes
from mcp import Client
from mcp.server import MCPServer
from mcp.shared.exceptions import MCPError

from server.app import create_server
from server.settings import Settings
from server.workers import PoolSettings
from tools.workspace import Workspace

pytestmark = pytest.mark.anyio

TOOLS = {
    "create_study",
    "run_trials",
    "best_params",
    "list_studies",
    "describe_dataset",
    "get_run",
    "cancel_run",
    "list_trials",
    "delete_study",
}
READ_ONLY = {"best_params", "list_trials", "list_studies", "describe_dataset", "get_run"}


def make_server(ws: Workspace, **kw: Any) -> MCPServer:
    options: dict[str, Any] = {"trainer": "fake", "pin_cpus": False, "default_wait_s": 30.0, **kw}
    return create_server(Settings(workspace=ws.root, storage_url=ws.storage_url, **options))


@pytest.fixture
def slow_epochs(monkeypatch: pytest.MonkeyPatch) -> None:
    """50 ms per fake epoch: runs last long enough to be caught running."""
    monkeypatch.setenv("SEQTUNE_FAKE_EPOCH_SECONDS", "0.05")


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured result."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    assert result.structured_content is not None
    return result.structured_content


async def error(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail; its error text."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    assert result.structured_content is None
    text = result.content[0].text
    assert isinstance(text, str)
    return text


async def create(client: Client, name: str = "s", **kw: Any) -> dict[str, Any]:
    arguments = {"dataset": "d.npz", "max_epochs": 5, "sampler": "random", **kw}
    return await call(client, "create_study", study_name=name, **arguments)


def study_trials(ws: Workspace, name: str = "s") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=ws.storage_url).trials


async def wait_for_training(client: Client, n: int = 1, name: str = "s") -> None:
    """Until `n` trials are RUNNING and have each reported an epoch (their workers are up)."""
    with anyio.fail_after(15):
        while True:
            listing = await call(client, "list_trials", study_name=name, states=["RUNNING"])
            if sum(t["epochs"] >= 1 for t in listing["trials"]) >= n:
                return
            await anyio.sleep(0.05)


# Listing


async def test_every_tool_is_listed_with_schemas_and_annotations(ws: Workspace) -> None:
    async with Client(make_server(ws)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) >= TOOLS
    for name in TOOLS:
        tool = tools[name]
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
        assert tool.annotations is not None and tool.description
        assert "ctx" not in tool.input_schema.get("properties", {})
        assert tool.annotations.read_only_hint is (name in READ_ONLY), name
    destructive = {n for n, t in tools.items() if t.annotations and t.annotations.destructive_hint}
    assert destructive == {"delete_study"}
    run = tools["run_trials"].input_schema["properties"]
    assert {"study_name", "n_trials", "timeout_s", "n_workers", "enqueue", "wait_s"} <= set(run)
    assert run["n_trials"]["anyOf"][0]["minimum"] == 1
    assert "run_id" in tools["run_trials"].output_schema["properties"]
    assert tools["create_study"].input_schema["required"] == ["study_name"]


# The whole flow


async def test_create_run_best_list_flow(ws: Workspace, small_npz: str) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with Client(make_server(ws)) as client:
        summary = await create(client, pruner="none")
        assert summary["study_name"] == "s" and summary["n_trials"] == 0
        assert summary["splits"]["train"]["classes"] == {"a": 56, "b": 56}

        first = {"lstm_units_1": 128, "use_second_lstm": False, "learning_rate": 3e-4}
        result = await client.call_tool(
            "run_trials",
            {"study_name": "s", "n_trials": 4, "wait_s": 30, "enqueue": [first]},
            progress_callback=on_progress,
        )
        assert not result.is_error, result.content[0].text
        report = result.structured_content
        assert report is not None
        assert report["state"] == "completed" and report["error"] is None
        assert report["finished"] == 4 and report["n_trials"] == 4
        assert [t["number"] for t in report["new_trials"]] == [0, 1, 2, 3]
        assert {t["state"] for t in report["new_trials"]} == {"COMPLETE"}
        assert {k: report["new_trials"][0]["params"][k] for k in first} == first
        assert report["counts"]["COMPLETE"] == 4 and sum(report["counts"].values()) == 4
        best_value = max(t["value"] for t in report["new_trials"])
        assert report["best_value"] == best_value
        assert report["message"].startswith(f"run {report['run_id']} completed: 4 trials finished")

        assert progress, "no progress notifications"
        values = [p for p, _, _ in progress]
        assert values == sorted(values) and values[-1] == 4 and values[0] < 1
        assert {total for _, total, _ in progress} == {4}
        assert all(message and re.match(r"trial \d+ ", message) for _, _, message in progress)
        assert any("complete after 5 epochs" in (m or "") for _, _, m in progress)

        best = await call(client, "best_params", study_name="s")
        assert best["best_value"] == best_value and best["n_trials"] == 4
        assert best["best_trial"] == report["best_trial"]
        assert best["metric"] == "val_accuracy" and best["direction"] == "maximize"
        assert best["counts"]["COMPLETE"] == 4
        assert {"lstm_units_1", "learning_rate", "batch_size"} <= set(best["params"])
        assert ("lstm_units_2" in best["params"]) == best["params"]["use_second_lstm"]
        assert best["user_attrs"]["epochs"] == 5

        listing = await call(client, "list_trials", study_name="s")
        assert listing["total"] == 4
        assert [t["number"] for t in listing["trials"]] == [3, 2, 1, 0]  # newest first
        ranked = await call(client, "list_trials", study_name="s", order="best", limit=2)
        assert ranked["total"] == 4 and len(ranked["trials"]) == 2
        assert ranked["trials"][0]["value"] == best_value
        assert ranked["trials"][0]["value"] >= ranked["trials"][1]["value"]
        assert (await call(client, "list_trials", study_name="s", states=["FAIL"]))["total"] == 0

        studies = await call(client, "list_studies")
        assert [s["study_name"] for s in studies["studies"]] == ["s"]
        assert studies["studies"][0]["n_trials"] == 4
        assert studies["studies"][0]["best_value"] == best_value


async def test_progress_strictly_increases(ws: Workspace, small_npz: str) -> None:
    values: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        values.append(value)

    async with Client(make_server(ws)) as client:
        await create(client, max_epochs=3, pruner="none")
        result = await client.call_tool(
            "run_trials",
            {"study_name": "s", "n_trials": 2, "wait_s": 30},
            progress_callback=on_progress,
        )
        assert not result.is_error
    assert len(values) >= 2
    assert all(b > a for a, b in itertools.pairwise(values)), values


async def test_describe_dataset_and_study_options(ws: Workspace, small_npz: str) -> None:
    async with Client(make_server(ws)) as client:
        summary = await call(client, "describe_dataset", dataset="d.npz")
        text = json.dumps(summary)
        assert "120" in text and '"a"' in text and '"b"' in text
        study = await create(
            client,
            metric="val_loss",
            pruner={"name": "percentile", "percentile": 30.0},
            search_space={"use_second_lstm": False, "batch_size": [16, 32]},
            split={"train": 0.6, "val": 0.2, "test": 0.2},
        )
        assert study["direction"] == "minimize"
        assert study["pruner"]["name"] == "percentile" and study["pruner"]["percentile"] == 30.0
        assert study["search_space"]["use_second_lstm"] == {"value": False}
        assert study["search_space"]["batch_size"] == {"choices": [16, 32]}
        assert study["splits"]["val"]["n"] == 24 and study["splits"]["test"]["n"] == 24


async def test_a_time_budget_run(ws: Workspace, small_npz: str) -> None:
    async with Client(make_server(ws)) as client:
        await create(client, max_epochs=3, pruner="none")
        report = await call(
            client, "run_trials", study_name="s", n_trials=None, timeout_s=0.5, wait_s=20
        )
    assert report["state"] == "completed" and report["n_trials"] is None
    assert report["timeout_s"] == 0.5 and report["finished"] >= 1
    assert report["counts"]["RUNNING"] == 0
    assert report["counts"]["COMPLETE"] == report["finished"]


async def test_a_short_wait_returns_running_then_get_run_waits(
    ws: Workspace, small_npz: str, slow_epochs: None
) -> None:
    async with Client(make_server(ws)) as client:
        await create(client, max_epochs=3, pruner="none")
        first = await call(client, "run_trials", study_name="s", n_trials=3, wait_s=0.05)
        assert first["state"] == "running" and first["finished"] < 3
        assert f"get_run(run_id='{first['run_id']}')" in first["message"]
        later = await call(client, "get_run", run_id=first["run_id"], wait_s=30)
        assert later["state"] == "completed" and later["finished"] == 3
        assert later["run_id"] == first["run_id"] and later["elapsed_s"] > 0
        # cancelling a finished run changes nothing
        again = await call(client, "cancel_run", run_id=first["run_id"])
        assert again["state"] == "completed"


# Stopping runs


async def test_cancel_run_leaves_no_running_trial_and_no_worker(
    ws: Workspace, small_npz: str, slow_epochs: None
) -> None:
    async with Client(make_server(ws)) as client:
        await create(client, max_epochs=100, pruner="none")
        started = await call(
            client, "run_trials", study_name="s", n_trials=50, n_workers=2, wait_s=0
        )
        assert started["state"] == "running"
        await wait_for_training(client, n=2)
        assert len(worker_processes()) == 2
        cancelled = await call(client, "cancel_run", run_id=started["run_id"])
        assert cancelled["state"] == "cancelled"
        assert cancelled["counts"]["RUNNING"] == 0 and cancelled["counts"]["FAIL"] == 2
        assert [t["reason"] for t in cancelled["new_trials"]] == ["cancelled", "cancelled"]
        listing = await call(client, "list_trials", study_name="s", states=["RUNNING"])
        assert listing["total"] == 0
        assert worker_processes() == []
        polled = await call(client, "get_run", run_id=started["run_id"])
        assert polled["state"] == "cancelled" and polled["finished"] == 2
        # the study is free again
        await call(client, "run_trials", study_name="s", n_trials=1, wait_s=0)


def slow_starting_workers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, delay: float) -> None:
    """Workers take `delay` seconds to start (a stand-in for TensorFlow's import time)."""
    script = tmp_path / "slow-python"
    script.write_text(f'#!/bin/sh\nsleep {delay}\nexec "{sys.executable}" "$@"\n')
    script.chmod(0o755)
    original = Settings.pool_settings

    def pool_settings(self: Settings) -> PoolSettings:
        return dataclasses.replace(original(self), python=str(script))

    monkeypatch.setattr(Settings, "pool_settings", pool_settings)


async def test_cancel_run_while_its_worker_starts_leaves_no_worker(
    ws: Workspace, small_npz: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    slow_starting_workers(monkeypatch, tmp_path, delay=0.6)
    async with Client(make_server(ws)) as client:
        await create(client)
        started = await call(client, "run_trials", study_name="s", n_trials=5, wait_s=0.2)
        assert started["state"] == "running" and started["finished"] == 0
        cancelled = await call(client, "cancel_run", run_id=started["run_id"])
        assert cancelled["state"] == "cancelled" and cancelled["counts"]["RUNNING"] == 0
        await anyio.sleep(0.8)  # past the start delay
        assert worker_processes() == []


async def test_cancelling_the_run_trials_call_cancels_the_run(
    ws: Workspace, small_npz: str, slow_epochs: None
) -> None:
    async with Client(make_server(ws)) as client:
        await create(client, max_epochs=100, pruner="none")
        with anyio.move_on_after(1.0) as scope:
            await client.call_tool("run_trials", {"study_name": "s", "n_trials": 50, "wait_s": 60})
        assert scope.cancelled_caught
        # the run id is not returned to a cancelled call: an unknown id lists the known runs
        text = await error(client, "get_run", run_id="nope")
        match = re.search(r"known runs: (\w+) \(s, \w+\)", text)
        assert match, text
        report = await call(client, "get_run", run_id=match.group(1), wait_s=10)
        assert report["state"] == "cancelled"
        assert report["counts"]["RUNNING"] == 0 and report["finished"] >= 1
        assert report["new_trials"][-1]["reason"] == "cancelled"
        listing = await call(client, "list_trials", study_name="s", states=["RUNNING"])
        assert listing["total"] == 0
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in study_trials(ws))


async def test_server_shutdown_ends_active_runs_cleanly(
    ws: Workspace, small_npz: str, slow_epochs: None
) -> None:
    async with Client(make_server(ws)) as client:
        await create(client, max_epochs=100, pruner="none")
        await call(client, "run_trials", study_name="s", n_trials=50, n_workers=2, wait_s=0)
        await wait_for_training(client)
    found = study_trials(ws)
    assert found and all(t.state == optuna.trial.TrialState.FAIL for t in found)
    assert {t.user_attrs["fail_reason"] for t in found} == {"cancelled"}
    assert worker_processes() == []


async def test_a_busy_study_refuses_a_second_run_and_deletion(
    ws: Workspace, small_npz: str, slow_epochs: None
) -> None:
    async with Client(make_server(ws)) as client:
        await create(client, max_epochs=100, pruner="none")
        run = await call(client, "run_trials", study_name="s", n_trials=50, wait_s=0)
        run_id = run["run_id"]
        busy = await error(client, "run_trials", study_name="s", n_trials=1)
        assert busy == (
            f"Error executing tool run_trials: run {run_id} is already running on study 's'; "
            f"wait for it with get_run('{run_id}') or stop it with cancel_run('{run_id}')"
        )
        text = await error(client, "delete_study", study_name="s")
        assert text.startswith("Error executing tool delete_study: ")
        assert f"run {run_id} is" in text and "running on study 's'" in text
        assert f"cancel_run('{run_id}')" in text
        assert (await call(client, "get_run", run_id=run_id))["state"] == "running"
        await call(client, "cancel_run", run_id=run_id)
        deleted = await call(client, "delete_study", study_name="s")
        assert deleted["study_name"] == "s"
        assert any("studies/s" in item for item in deleted["removed"])
        assert (await call(client, "list_studies"))["studies"] == []
    assert not ws.study_dir("s").exists()


async def test_two_simultaneous_runs_on_one_study_are_refused(
    ws: Workspace, small_npz: str, slow_epochs: None
) -> None:
    async with Client(make_server(ws)) as client:
        await create(client, max_epochs=20, pruner="none")
        results = []

        async def start() -> None:
            arguments = {"study_name": "s", "n_trials": 3, "wait_s": 0}
            results.append(await client.call_tool("run_trials", arguments))

        async with anyio.create_task_group() as tg:
            tg.start_soon(start)
            tg.start_soon(start)
        errors = [r.content[0].text for r in results if r.is_error]
        assert len(errors) == 1 and "is already running on study 's'" in errors[0]


async def test_delete_study_refuses_while_a_run_is_starting(
    ws: Workspace, small_npz: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tools.trials

    real = tools.trials.ensure_prepared

    def slow_ensure_prepared(*args: Any) -> Any:
        time.sleep(0.6)  # a large dataset being re-checked / rebuilt before the run starts
        return real(*args)

    monkeypatch.setattr(tools.trials, "ensure_prepared", slow_ensure_prepared)
    async with Client(make_server(ws)) as client:
        await create(client)
        results: dict[str, Any] = {}

        async def start_run() -> None:
            arguments = {"study_name": "s", "n_trials": 1, "wait_s": 0}
            results["run"] = await client.call_tool("run_trials", arguments)

        async def delete() -> None:
            await anyio.sleep(0.3)  # while the run is being prepared
            results["delete"] = await client.call_tool("delete_study", {"study_name": "s"})

        async with anyio.create_task_group() as tg:
            tg.start_soon(start_run)
            tg.start_soon(delete)
        outcomes = {name: not r.is_error for name, r in results.items()}
        assert outcomes != {"run": True, "delete": True}, "the study was deleted under a run"
        assert "running on study 's'" in results["delete"].content[0].text
        assert not results["run"].is_error


async def test_a_failing_run_reports_failed_with_the_reason(
    ws: Workspace, small_npz: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQTUNE_FAKE_FAULTS", ",".join(f"raise:{n}" for n in range(10)))
    async with Client(make_server(ws, max_consecutive_failures=2)) as client:
        await create(client)
        report = await call(client, "run_trials", study_name="s", n_trials=10, wait_s=30)
        assert report["state"] == "failed"
        assert report["error"].startswith("run stopped after 2 consecutive failed trials")
        assert report["counts"]["FAIL"] == 2 and report["finished"] == 2
        assert "failed after 2 trials" in report["message"]
        failed = await call(client, "list_trials", study_name="s", states=["FAIL"])
        assert {t["reason"] for t in failed["trials"]} == {
            "RuntimeError: fake trainer asked to fail"
        }


async def test_workers_that_cannot_start_fail_the_run_with_a_clear_error(
    ws: Workspace, small_npz: str
) -> None:
    async with Client(make_server(ws, trainer="bogus", max_consecutive_failures=2)) as client:
        await create(client)
        report = await call(client, "run_trials", study_name="s", n_trials=5, wait_s=30)
        assert report["state"] == "failed" and report["finished"] == 2
        assert "failed to start" in (report["error"] or "")
        assert all("failed to start" in t["reason"] for t in report["new_trials"])
    tails = [t.user_attrs.get("stderr_tail", "") for t in study_trials(ws)]
    assert len(tails) == 2 and all("invalid choice: 'bogus'" in tail for tail in tails)


# Errors an assistant can act on


async def test_unknown_study_lists_the_existing_ones(ws: Workspace, small_npz: str) -> None:
    async with Client(make_server(ws)) as client:
        await create(client, "alpha")
        await create(client, "beta")
        for tool in ("best_params", "list_trials", "run_trials", "delete_study"):
            text = await error(client, tool, study_name="alpah")
            assert text.startswith(f"Error executing tool {tool}: study 'alpah' not found")
            assert "did you mean 'alpha'?" in text
            assert text.endswith("existing studies: alpha, beta")


BAD_DATASETS = [
    ("missing.npz", "dataset file not found"),
    ("../x.npz", "outside the allowed folders"),
    ("/etc/passwd.npz", "outside the allowed folders"),
    ("sub/../../ws2/d.npz", "outside the allowed folders"),
    ("d.txt", "unsupported dataset file"),
    ("builtin:nope", "unknown builtin dataset"),
]


async def test_bad_dataset_paths_are_refused(ws: Workspace, small_npz: str) -> None:
    async with Client(make_server(ws)) as client:
        for dataset, message in BAD_DATASETS:
            for tool, extra in (("create_study", {"study_name": "s"}), ("describe_dataset", {})):
                text = await error(client, tool, dataset=dataset, **extra)
                assert text.startswith(f"Error executing tool {tool}: "), dataset
                assert message in text, (dataset, text)
        assert (await call(client, "list_studies"))["studies"] == []


async def test_a_symlink_out_of_the_workspace_is_refused(
    ws: Workspace, small_npz: str, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.npz"
    (ws.root / "d.npz").rename(outside)
    (ws.root / "link.npz").symlink_to(outside)
    async with Client(make_server(ws)) as client:
        text = await error(client, "create_study", study_name="s", dataset="link.npz")
    assert "outside the allowed folders" in text


BAD_SPACES: list[tuple[dict[str, Any], str]] = [
    ({"lstm_units_1": {"choices": []}}, "'lstm_units_1': 'choices' is empty"),
    ({"foo": [1]}, "unknown hyperparameter 'foo'"),
    ({"dropout_rate": {"low": 0.5, "high": 0.2}}, "inverted range"),
    ({"learning_rate": {"low": 0.0, "high": 0.001, "log": True}}, "must lie in"),
    ({"use_second_lstm": [1]}, "takes bool values"),
]


async def test_invalid_search_space_is_refused(ws: Workspace, small_npz: str) -> None:
    async with Client(make_server(ws)) as client:
        for space, message in BAD_SPACES:
            text = await error(
                client, "create_study", study_name="s", dataset="d.npz", search_space=space
            )
            assert text.startswith("Error executing tool create_study: ")
            assert message in text, (space, text)
        assert (await call(client, "list_studies"))["studies"] == []


async def test_run_argument_errors(ws: Workspace, small_npz: str) -> None:
    server = make_server(ws)
    limit = Settings(workspace=ws.root).max_workers
    async with Client(server) as client:
        await create(client)
        text = await error(client, "get_run", run_id="deadbeef")
        assert "run 'deadbeef' not found in this server" in text
        text = await error(client, "cancel_run", run_id="deadbeef")
        assert "run 'deadbeef' not found" in text
        text = await error(client, "run_trials", study_name="s", n_trials=0)
        assert "validation error" in text and "n_trials" in text
        text = await error(client, "run_trials", study_name="s", n_trials=None, timeout_s=None)
        assert text.endswith("give n_trials, timeout_s, or both: a run needs a budget")
        if limit < 64:
            text = await error(
                client, "run_trials", study_name="s", n_trials=1, n_workers=limit + 1
            )
            assert f"n_workers={limit + 1} exceeds this server's limit of {limit}" in text
        text = await error(client, "run_trials", study_name="s", n_trials=1, n_workers=65)
        assert "validation error" in text
        text = await error(client, "run_trials", study_name="s", n_trials=1, enqueue=[{"bogus": 1}])
        assert "enqueued param 'bogus' is not in the search space" in text
        text = await error(client, "create_study", study_name="../x", dataset="d.npz")
        assert "invalid study name" in text
        text = await error(
            client, "create_study", study_name="s", dataset="d.npz", sampler="random", max_epochs=9
        )
        assert "already exists with a different configuration (max_epochs: 5 -> 9)" in text
        # none of these left a run behind or a trial in the study
        assert (await call(client, "list_trials", study_name="s"))["total"] == 0


async def test_a_changed_dataset_is_refused_when_a_run_starts(
    ws: Workspace, small_npz: str
) -> None:
    from conftest import write_small_npz

    async with Client(make_server(ws)) as client:
        await create(client)
        write_small_npz(ws.root / "d.npz", seed=9)
        text = await error(client, "run_trials", study_name="s", n_trials=1)
        assert "changed since study 's' was created" in text


# Resources and prompt


async def test_study_resources_are_json(ws: Workspace, small_npz: str) -> None:
    async with Client(make_server(ws)) as client:
        empty = json.loads((await client.read_resource("seqtune://studies")).contents[0].text)
        assert empty["studies"] == [] and empty["storage"] == ws.storage_url
        await create(client, "alpha")
        listing = await client.read_resource("seqtune://studies")
        content = listing.contents[0]
        assert content.mime_type == "application/json"
        studies = json.loads(content.text)
        assert [s["study_name"] for s in studies["studies"]] == ["alpha"]
        one = await client.read_resource("seqtune://studies/alpha")
        summary = json.loads(one.contents[0].text)
        assert summary["study_name"] == "alpha" and summary["max_epochs"] == 5
        assert summary["splits"]["train"]["n"] == 112
        with pytest.raises(MCPError, match="existing studies: alpha"):
            await client.read_resource("seqtune://studies/nope")


async def test_tune_bilstm_prompt(ws: Workspace) -> None:
    async with Client(make_server(ws)) as client:
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert "tune_bilstm" in prompts
        default = await client.get_prompt("tune_bilstm", {})
        custom = await client.get_prompt("tune_bilstm", {"dataset": "d.npz", "n_trials": "12"})
    text = default.messages[0].content.text
    assert "create_study" in text and "run_trials" in text and "builtin:gait" in text
    custom_text = custom.messages[0].content.text
    assert '"d.npz"' in custom_text and "n_trials=12" in custom_text
