"""MCP tools that start, watch and stop background runs of trials."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from server.errors import tool_errors
from server.runs import RunReport
from server.state import READ_ONLY, AppState, StudyName, app_state
from tools.errors import InvalidConfig
from tools.trials import MAX_TIMEOUT_S, MAX_TRIALS, RunEvent, RunPlan

log = logging.getLogger(__name__)


def register_run_tools(server: MCPServer) -> None:
    @server.tool(
        title="Run tuning trials",
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=False,
        ),
    )
    async def run_trials(
        ctx: Context,
        study_name: StudyName,
        n_trials: Annotated[
            int | None,
            Field(ge=1, le=MAX_TRIALS, description="Trials to run (None: until timeout_s)."),
        ] = 20,
        timeout_s: Annotated[
            float | None,
            Field(
                gt=0, le=MAX_TIMEOUT_S, description="Start no new trial after this many seconds."
            ),
        ] = None,
        n_workers: Annotated[
            int | None,
            Field(
                ge=1,
                le=64,
                description="Trials trained at once (default: the server setting for 'local', "
                "every worker thread of the cluster for 'dask').",
            ),
        ] = None,
        enqueue: Annotated[
            list[dict[str, Any]] | None,
            Field(max_length=100, description="Param sets to try first, e.g. a known good config."),
        ] = None,
        retry_failed: Annotated[
            int,
            Field(
                ge=0,
                le=5,
                description="Run a failed trial's params again up to this many times (each "
                "retry is a new trial recording retry_of; it counts toward n_trials).",
            ),
        ] = 0,
        executor: Annotated[
            Literal["local", "dask"],
            Field(
                description="'local': worker processes of this server; 'dask': the Dask cluster "
                "the server was started with (--dask-scheduler; needs PostgreSQL storage)."
            ),
        ] = "local",
        wait_s: Annotated[
            float | None,
            Field(
                ge=0,
                le=3600,
                description="Wait this long for "
                "the run to end before returning a 'running' "
                "snapshot (default: server setting, 45 s).",
            ),
        ] = None,
    ) -> RunReport:
        """Run trials in worker processes. Returns when the run ends or after wait_s with
        state 'running' (the run goes on: poll get_run). Sends progress notifications.
        Cancelling this request cancels the run."""
        state = app_state(ctx)
        with tool_errors():
            trial_executor, default_workers = await state.executor(executor)
            workers = n_workers or default_workers
            if executor == "local" and workers > state.settings.max_workers:
                raise InvalidConfig(
                    f"n_workers={workers} exceeds this server's limit of "
                    f"{state.settings.max_workers}"
                )
            if n_trials is None and timeout_s is None:
                raise InvalidConfig("give n_trials, timeout_s, or both: a run needs a budget")
            plan = RunPlan(
                n_trials=n_trials,
                timeout_s=timeout_s,
                n_workers=workers,
                enqueue=enqueue or [],
                max_consecutive_failures=state.settings.max_consecutive_failures,
                max_retries=retry_failed,
            )
            run = await state.runs.start(study_name, plan, trial_executor, executor)
            try:
                await state.runs.wait(run, _wait(state, wait_s), _progress_sink(ctx))
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True):
                    log.info("run_trials request cancelled by the client: cancelling %s", run.id)
                    await state.runs.cancel(run)
                raise
            return await state.runs.report(run)

    @server.tool(title="Get a run", annotations=READ_ONLY)
    async def get_run(
        ctx: Context,
        run_id: Annotated[str, Field(max_length=64, description="Id from run_trials.")],
        wait_s: Annotated[
            float,
            Field(
                ge=0,
                le=3600,
                description="Wait up to this long for the run to end (0: snapshot now).",
            ),
        ] = 0,
    ) -> RunReport:
        """A run's state, new trials, counts and best so far; optionally wait for it to end."""
        state = app_state(ctx)
        with tool_errors():
            run = state.runs.get(run_id)
            await state.runs.wait(run, wait_s, _progress_sink(ctx))
            return await state.runs.report(run)

    @server.tool(
        title="Cancel a run",
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    async def cancel_run(
        ctx: Context,
        run_id: Annotated[str, Field(max_length=64, description="Id from run_trials.")],
    ) -> RunReport:
        """Stop a run now: its running trials end as FAIL 'cancelled'; finished trials stay."""
        state = app_state(ctx)
        with tool_errors():
            run = state.runs.get(run_id)
            await state.runs.cancel(run)
            return await state.runs.report(run)


def _wait(state: AppState, wait_s: float | None) -> float:
    return state.settings.default_wait_s if wait_s is None else wait_s


def _progress_sink(ctx: Context) -> Any:
    """Forward run events as MCP progress; the value must increase with each notification."""
    last = -1.0

    async def sink(event: RunEvent) -> None:
        nonlocal last
        if event.kind == "started" or event.progress <= last:
            return
        last = event.progress
        await ctx.report_progress(round(event.progress, 4), event.total, event.message)

    return sink
