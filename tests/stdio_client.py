"""Start `seqtune serve` as a subprocess and talk to it over stdio with the MCP client."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psutil
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SEQTUNE_SHARED_DATA", REPO.parent / "shared" / "data"))


def serve_params(workspace: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    base.update({"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO), **(env or {})})
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "server.cli", "serve", "--workspace", str(workspace), *extra],
        env=base,
        cwd=str(REPO),
    )


@asynccontextmanager
async def stdio_server(
    workspace: Path, *extra: str, errlog: Path | None = None, env: dict[str, str] | None = None
) -> AsyncIterator[Client]:
    log = (errlog or workspace.parent / "server.stderr").open("a")
    try:
        transport = stdio_client(serve_params(workspace, *extra, env=env), errlog=log)
        async with Client(transport, read_timeout_seconds=900) as client:
            yield client
    finally:
        log.close()


def server_processes() -> list[psutil.Process]:
    """`seqtune serve` processes started by this test process."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = proc.cmdline()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        if "server.cli" in cmd and "serve" in cmd:
            found.append(proc)
    return found


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} failed: {result.content}"
    assert result.structured_content is not None
    return dict(result.structured_content)


async def call_error(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} unexpectedly succeeded: {result.structured_content}"
    text: str = result.content[0].text  # type: ignore[union-attr]
    return text
