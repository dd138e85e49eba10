"""`seqtune serve --transport http` as a subprocess, driven by the mcp client over streamable HTTP.

The server runs the fake trainer (real worker processes and pipes, learning
curves drawn instead of trained). Every request must carry the bearer token.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import optuna
import psutil
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from server.http import GRACE_S, HttpOptions, http_options, read_token
from tests.conftest import write_small_npz
from tests.stdio_client import REPO, call

TOKEN = "s3qtune-test-token-0123456789abcdef"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    url: str
    ws: Path
    stderr: Path

    def log(self) -> str:
        return self.stderr.read_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve_cmd(ws: Path, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "server.cli",
        "serve",
        "--transport",
        "http",
        "--port",
        str(port),
        "--trainer",
        "fake",
        "--workspace",
        str(ws),
        *extra,
    ]


def serve_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return {**env, "PYTHONPATH": str(REPO), **extra}


def start_server(tmp: Path, *extra: str, env: dict[str, str] | None = None) -> Served:
    ws, port = tmp / "ws", free_port()
    write_small_npz(ws / "d.npz")
    stderr = tmp / "server.stderr"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            serve_cmd(ws, port, *extra),
            env=serve_env(SEQTUNE_HTTP_TOKEN=TOKEN, **(env or {})),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    served = Served(proc, f"http://127.0.0.1:{port}/mcp", ws, stderr)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx2.get(served.url, timeout=1)
            return served
        except httpx2.TransportError:
            time.sleep(0.1)
    stop_server(served)
    raise AssertionError(f"server did not start:\n{served.log()}")


def stop_server(served: Served) -> None:
    if served.proc.poll() is None:
        served.proc.terminate()
        try:
            served.proc.wait(30)
        except subprocess.TimeoutExpired:
            served.proc.kill()
            served.proc.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the read-mostly tests (each starts in about a second)."""
    served = start_server(tmp_path_factory.mktemp("http"))
    yield served
    stop_server(served)


@asynccontextmanager
async def http_client(
    url: str, token: str | None = TOKEN, mode: Any = "auto"
) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = httpx2.Timeout(30, read=300)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        Client(
            streamable_http_client(url, http_client=http), mode=mode, read_timeout_seconds=120
        ) as client,
    ):
        yield client


def workers_of(pid: int) -> list[psutil.Process]:
    return [
        p for p in psutil.Process(pid).children(recursive=True) if "tools.worker" in p.cmdline()
    ]


def gone(pids: list[int]) -> bool:
    def alive(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    return not any(alive(p) for p in pids)


def trials(ws: Path, study: str) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{ws / 'seqtune.db'}"
    return optuna.load_study(study_name=study, storage=storage).trials


# -- end to end over HTTP -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_tools_and_a_run_over_http(served: Served, mode: str) -> None:
    study = f"s-{mode}"
    async with http_client(served.url, mode=mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"create_study", "run_trials", "get_run", "best_params"} <= names
        created = await call(
            client, "create_study", study_name=study, dataset="d.npz", max_epochs=3
        )
        assert created["study_name"] == study
        report = await call(client, "run_trials", study_name=study, n_trials=3, wait_s=120)
    assert report["state"] == "completed"
    assert report["finished"] == 3 and len(report["new_trials"]) == 3
    counts = report["counts"]
    assert counts["RUNNING"] == counts["WAITING"] == 0
    assert counts["COMPLETE"] + counts["PRUNED"] + counts["FAIL"] == 3
    assert report["best_value"] is not None
    assert len(trials(served.ws, study)) == 3


@pytest.mark.slow
@pytest.mark.anyio
async def test_sessions_share_one_run_manager(served: Served) -> None:
    """The lifespan is entered once for the app: a run one client started, another cancels."""
    async with http_client(served.url, mode="legacy") as first:
        await call(first, "create_study", study_name="shared", dataset="d.npz", max_epochs=10)
        started = await call(first, "run_trials", study_name="shared", n_trials=500, wait_s=0)
        assert started["state"] == "running"
        async with http_client(served.url) as second:
            cancelled = await call(second, "cancel_run", run_id=started["run_id"])
        assert cancelled["state"] == "cancelled" and cancelled["counts"]["RUNNING"] == 0
        seen = await call(first, "get_run", run_id=started["run_id"])
    assert seen["state"] == "cancelled" and seen["finished"] < 500
    assert served.log().count("StreamableHTTP session manager started") == 1


@pytest.mark.slow
def test_token_is_never_logged(served: Served) -> None:
    httpx2.post(served.url, json=INIT, headers={**MCP_HEADERS, **AUTH})
    httpx2.post(served.url, json=INIT, headers={"Authorization": f"Bearer {TOKEN}x"})
    assert "401 for POST /mcp" in served.log()
    assert TOKEN not in served.log()


# -- the token ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("headers", "problem", "challenge"),
    [
        ({}, "missing header 'Authorization: Bearer <token>'", 'Bearer realm="seqtune"'),
        ({"Authorization": f"Bearer {TOKEN}x"}, "wrong bearer token", 'error="invalid_token"'),
        ({"Authorization": TOKEN}, "must be 'Bearer <token>'", 'Bearer realm="seqtune"'),
    ],
)
def test_requests_without_the_token_get_401(
    served: Served, headers: dict[str, str], problem: str, challenge: str
) -> None:
    for method, url in [("POST", served.url), ("GET", served.url), ("GET", served.url[:-4])]:
        response = httpx2.request(method, url, json=INIT, headers={**MCP_HEADERS, **headers})
        assert response.status_code == 401, (method, url)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert challenge in response.headers["www-authenticate"]
        assert problem in response.json()["error"]["message"]
    ok = httpx2.post(served.url, json=INIT, headers={**MCP_HEADERS, **AUTH})
    assert ok.status_code == 200 and ok.headers["mcp-session-id"]


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize(("token", "problem"), [(None, "missing header"), ("wrong", "wrong")])
async def test_mcp_client_without_the_token_fails(
    served: Served, token: str | None, problem: str
) -> None:
    with pytest.RaisesGroup(
        pytest.RaisesExc(MCPError, match=f"unauthorized: {problem}"), flatten_subgroups=True
    ):
        async with http_client(served.url, token=token) as client:
            await client.list_tools()


# -- where it may listen --------------------------------------------------------------


def run_serve(workspace: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`seqtune serve --transport http` to its end (these setups refuse to start)."""
    return subprocess.run(
        serve_cmd(workspace, free_port(), *extra),
        env=serve_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_non_loopback_without_token_refuses_to_start(tmp_path: Path) -> None:
    done = run_serve(tmp_path / "ws", "--host", "0.0.0.0")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "0.0.0.0" in lines[0] and "set SEQTUNE_HTTP_TOKEN or pass --token-file" in lines[0]
    assert not (tmp_path / "ws").exists()


@pytest.mark.slow
@pytest.mark.parametrize("content", [None, "  \n"])
def test_missing_or_empty_token_file_refuses_to_start(tmp_path: Path, content: str | None) -> None:
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content)
    done = run_serve(tmp_path / "ws", "--token-file", str(token_file))
    assert done.returncode == 2
    expected = "no such file" if content is None else "is empty"
    assert expected in done.stderr and str(token_file) in done.stderr


@pytest.mark.slow
def test_host_header_checks_loopback_only(tmp_path: Path) -> None:
    """On 0.0.0.0 (with a token) any Host name works; on loopback a foreign one is refused."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    headers = {**MCP_HEADERS, **AUTH, "Host": "seqtune.example:80"}
    wide = start_server(tmp_path / "wide", "--host", "0.0.0.0", "--token-file", str(token_file))
    try:
        assert httpx2.post(wide.url, json=INIT, headers=headers).status_code == 200
    finally:
        stop_server(wide)
    assert "readable by other users" not in wide.log()
    local = start_server(tmp_path / "local")
    try:
        assert httpx2.post(local.url, json=INIT, headers=headers).status_code == 421
    finally:
        stop_server(local)


# -- shutdown -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
async def test_signal_mid_run_ends_trials_and_workers(tmp_path: Path, signame: str) -> None:
    served = start_server(tmp_path, env={"SEQTUNE_FAKE_EPOCH_SECONDS": "0.2"})
    try:
        # Legacy mode: a stateful session with its open GET stream, as most clients use today.
        async with http_client(served.url, mode="legacy") as client:
            await call(client, "create_study", study_name="s", dataset="d.npz", max_epochs=10)
            started = await call(
                client, "run_trials", study_name="s", n_trials=200, n_workers=2, wait_s=1
            )
            assert started["state"] == "running"
            pids = [served.proc.pid] + [w.pid for w in workers_of(served.proc.pid)]
            assert len(pids) == 3
            async with anyio.create_task_group() as tg:
                waited: dict[str, Any] = {}

                async def wait_for_run() -> None:
                    waited.update(
                        await call(client, "get_run", run_id=started["run_id"], wait_s=60)
                    )

                tg.start_soon(wait_for_run)
                await anyio.sleep(0.5)
                t0 = time.monotonic()
                os.kill(served.proc.pid, getattr(signal, signame))
            # The call still waiting got its answer before the server stopped.
            assert waited["state"] == "cancelled" and waited["counts"]["RUNNING"] == 0
            # The session (and its GET stream) stays open: the server must not wait for it.
            code = await anyio.to_thread.run_sync(served.proc.wait, 30)
            assert time.monotonic() - t0 < GRACE_S  # not held up by the open GET stream
    finally:
        stop_server(served)
    assert code == 0, served.log()
    assert gone(pids)
    done = trials(served.ws, "s")
    assert not [t.number for t in done if t.state == optuna.trial.TrialState.RUNNING]
    reasons = {t.user_attrs.get("fail_reason") for t in done if t.state.name == "FAIL"}
    assert reasons == {"cancelled"}


# -- options, in process --------------------------------------------------------------


def test_token_file_wins_over_env_and_is_stripped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}\n")
    monkeypatch.setenv("SEQTUNE_HTTP_TOKEN", "from-env")
    assert read_token(token_file) == TOKEN
    assert read_token(None) == "from-env"
    options = http_options("0.0.0.0", None, token_file)
    assert options == HttpOptions("0.0.0.0", 8000, TOKEN)
    assert TOKEN not in repr(options)


@pytest.mark.parametrize(
    ("host", "env", "message"),
    [
        ("192.168.1.7", None, "refusing to serve on 192.168.1.7 without a token"),
        ("127.0.0.1", " ", "SEQTUNE_HTTP_TOKEN is set but empty"),
        ("127.0.0.1", "two words", "printable ASCII without spaces"),
    ],
)
def test_bad_setups_exit_2(
    host: str,
    env: str | None,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if env is None:
        monkeypatch.delenv("SEQTUNE_HTTP_TOKEN", raising=False)
    else:
        monkeypatch.setenv("SEQTUNE_HTTP_TOKEN", env)
    with pytest.raises(SystemExit) as exited:
        http_options(host, None, None)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_loopback_without_token_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEQTUNE_HTTP_TOKEN", raising=False)
    for host in ("127.0.0.1", "::1", "localhost", None):
        assert http_options(host, 9000, None).token is None
    assert http_options("::1", 9000, None).url == "http://[::1]:9000/mcp"
