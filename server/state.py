"""What every tool handler shares: the server's lifespan state and common annotations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import anyio
from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from server.dask_executor import DaskExecutor
from server.runs import RunManager
from server.settings import Settings
from server.workers import WorkerPool
from tools.errors import InvalidConfig
from tools.heartbeat import close_heartbeat_storages
from tools.trials import TrialExecutor
from tools.workspace import Workspace


@dataclass
class AppState:
    settings: Settings
    ws: Workspace
    pool: WorkerPool
    runs: RunManager
    dask: DaskExecutor | None = None

    async def executor(self, name: str) -> tuple[TrialExecutor, int]:
        """The executor a run asked for, and its default worker count."""
        if name == "local":
            return self.pool, self.settings.default_workers
        if not self.settings.dask_scheduler:
            raise InvalidConfig(
                "executor 'dask' needs a Dask scheduler: start the server with "
                "--dask-scheduler tcp://host:8786 (or SEQTUNE_DASK_SCHEDULER)"
            )
        if self.dask is None:
            s = self.settings
            self.dask = DaskExecutor(
                s.dask_scheduler, self.ws, s.trainer, s.trial_timeout_s, s.heartbeat
            )
        return self.dask, await self.dask.connect()

    async def aclose(self) -> None:
        await self.runs.shutdown()
        await self.pool.aclose()
        if self.dask is not None:
            await self.dask.aclose()
        await anyio.to_thread.run_sync(self.ws.close)
        close_heartbeat_storages()


def app_state(ctx: Context) -> AppState:
    state = ctx.request_context.lifespan_context
    assert isinstance(state, AppState)
    return state


READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
StudyName = Annotated[str, Field(description="Name of an existing study.", max_length=64)]
