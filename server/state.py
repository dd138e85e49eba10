"""What every tool handler shares: the server's lifespan state and common annotations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from server.runs import RunManager
from server.settings import Settings
from server.workers import WorkerPool
from tools.workspace import Workspace


@dataclass
class AppState:
    settings: Settings
    ws: Workspace
    pool: WorkerPool
    runs: RunManager


def app_state(ctx: Context) -> AppState:
    state = ctx.request_context.lifespan_context
    assert isinstance(state, AppState)
    return state


READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
StudyName = Annotated[str, Field(description="Name of an existing study.", max_length=64)]
