"""The MCP face of seqtune: thin async tools over the plain code in `tools/`.

Every tool validates its arguments through its schema, runs blocking work in
a thread (storage, data preparation), and maps expected failures to
actionable tool errors in one place (`server.errors`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from server.errors import tool_errors
from server.runs import RunManager, RunReport
from server.settings import Settings
from server.workers import WorkerPool
from tools import results, studies
from tools.data import DatasetSummary
from tools.errors import InvalidConfig, SeqtuneError, StudyBusy
from tools.schemas import (
    CsvOptions,
    Imbalance,
    Metric,
    PrunerName,
    PrunerSpec,
    SamplerName,
    SamplerSpec,
    SplitSpec,
)
from tools.search_space import Choice, ParamSpec
from tools.trials import MAX_TIMEOUT_S, MAX_TRIALS, RunEvent, RunPlan
from tools.workspace import Workspace

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
seqtune tunes Keras BiLSTM sequence classifiers with Optuna. Typical flow:
describe_dataset -> create_study -> run_trials (returns a run id; if state is
'running', poll get_run) -> best_params -> list_trials. Studies persist across
sessions; list_studies shows them. The test split is never used while tuning."""


@dataclass
class AppState:
    settings: Settings
    ws: Workspace
    pool: WorkerPool
    runs: RunManager


def create_server(settings: Settings) -> MCPServer:
    ws = settings.workspace_obj()

    @asynccontextmanager
    async def lifespan(server: MCPServer) -> AsyncIterator[AppState]:
        async with WorkerPool(settings.pool_settings()) as pool, anyio.create_task_group() as tg:
            manager = RunManager(ws, pool, tg)
            try:
                yield AppState(settings, ws, pool, manager)
            finally:
                await manager.shutdown()
                tg.cancel_scope.cancel()

    server = MCPServer("seqtune", instructions=INSTRUCTIONS, lifespan=lifespan, log_level="INFO")
    _register_study_tools(server)
    _register_run_tools(server)
    _register_resources(server, ws)
    return server


def _state(ctx: Context) -> AppState:
    state = ctx.request_context.lifespan_context
    assert isinstance(state, AppState)
    return state


READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
StudyName = Annotated[str, Field(description="Name of an existing study.", max_length=64)]


class DeleteResult(BaseModel):
    study_name: str
    removed: list[str]


def _register_study_tools(server: MCPServer) -> None:
    @server.tool(
        title="Describe a dataset",
        annotations=READ_ONLY,
    )
    async def describe_dataset(
        ctx: Context,
        dataset: Annotated[
            str,
            Field(
                description="'builtin:gait', or a .npz/.csv path inside the server's data folders.",
                max_length=4096,
            ),
        ],
        csv: Annotated[
            CsvOptions | None, Field(description="Columns of a long-format CSV.")
        ] = None,
    ) -> DatasetSummary:
        """Validate a dataset and summarise it (shape, classes, imbalance) before a study."""
        ws = _state(ctx).ws
        with tool_errors():
            summary: DatasetSummary = await anyio.to_thread.run_sync(
                studies.describe, ws, dataset, csv
            )
            return summary

    @server.tool(
        title="Create a tuning study",
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    async def create_study(
        ctx: Context,
        study_name: Annotated[
            str, Field(description="New study name: letters, digits, . _ -", max_length=64)
        ],
        dataset: Annotated[
            str,
            Field(
                description="'builtin:gait' (synthetic demo) or a .npz/.csv path.", max_length=4096
            ),
        ] = "builtin:gait",
        metric: Annotated[
            Metric,
            Field(
                description="Validation metric to optimise "
                "(val_loss is minimised, others maximised)."
            ),
        ] = "val_accuracy",
        sampler: Annotated[SamplerName, Field(description="Optuna sampler.")] = "tpe",
        n_startup_trials: Annotated[
            int, Field(ge=0, le=1000, description="Random trials before the sampler models.")
        ] = 10,
        pruner: Annotated[
            PrunerName | PrunerSpec,
            Field(description="Pruner name, or an object with its options."),
        ] = "median",
        search_space: Annotated[
            dict[str, ParamSpec | list[Choice] | Choice] | None,
            Field(
                description="Narrow or fix hyperparameters of the default BiLSTM space: "
                "{'lstm_units_1': [32, 64]} (choices), "
                "{'learning_rate': {'low': 1e-4, 'high': 1e-3, 'log': true}}  (range), "
                "{'use_second_lstm': false} (fixed). Known names: "
                "lstm_units_1, use_second_lstm, lstm_units_2, dense_units, dropout_rate, "
                "learning_rate, optimizer_choice, batch_size."
            ),
        ] = None,
        imbalance: Annotated[
            Imbalance, Field(description="How to handle class imbalance (training split only).")
        ] = "smote",
        max_epochs: Annotated[int, Field(ge=1, le=1000, description="Epochs per trial.")] = 30,
        patience: Annotated[int, Field(ge=1, le=1000, description="EarlyStopping patience.")] = 5,
        split: Annotated[
            SplitSpec | None, Field(description="train/val/test fractions; default 0.7/0.15/0.15.")
        ] = None,
        seed: Annotated[
            int,
            Field(
                ge=0, le=2**31 - 1, description="Seeds the split, SMOTE, sampler and every trial."
            ),
        ] = 42,
        smote_k_neighbors: Annotated[int, Field(ge=1, le=50)] = 5,
        smote_ratio: Annotated[
            float | None,
            Field(gt=0, le=1, description="Binary only: minority/majority ratio after SMOTE."),
        ] = None,
        csv: Annotated[
            CsvOptions | None, Field(description="Columns of a long-format CSV.")
        ] = None,
    ) -> studies.StudySummary:
        """Create a study (or return the identical existing one): validates and prepares the
        data once, records the whole configuration in the study."""
        ws = _state(ctx).ws
        with tool_errors():
            request = studies.StudyRequest(
                study_name=study_name,
                dataset=dataset,
                csv=csv,
                metric=metric,
                sampler=SamplerSpec(name=sampler, n_startup_trials=n_startup_trials),
                pruner=pruner if isinstance(pruner, PrunerSpec) else PrunerSpec(name=pruner),
                search_space=search_space,
                imbalance=imbalance,
                smote_k_neighbors=smote_k_neighbors,
                smote_ratio=smote_ratio,
                split=split or SplitSpec(),
                max_epochs=max_epochs,
                patience=patience,
                seed=seed,
            )
            summary: studies.StudySummary = await anyio.to_thread.run_sync(
                studies.create_study, ws, request
            )
            return summary

    @server.tool(title="Best parameters", annotations=READ_ONLY)
    async def best_params(ctx: Context, study_name: StudyName) -> results.BestParams:
        """The best trial so far: number, value, metric and every hyperparameter it used."""
        with tool_errors():
            best: results.BestParams = await anyio.to_thread.run_sync(
                results.best_params, _state(ctx).ws, study_name
            )
            return best

    @server.tool(title="List trials", annotations=READ_ONLY)
    async def list_trials(
        ctx: Context,
        study_name: StudyName,
        states: Annotated[
            list[results.TrialStateName] | None,
            Field(description="Only these states (default: all)."),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=1000)] = 50,
        order: Annotated[
            Literal["number", "best"],
            Field(description="'number': newest first; 'best': best value first."),
        ] = "number",
    ) -> results.TrialList:
        """Trials of a study with state, value, params, epochs, seconds and failure reason."""
        with tool_errors():
            listing: results.TrialList = await anyio.to_thread.run_sync(
                lambda: results.list_trials(_state(ctx).ws, study_name, states, limit, order)
            )
            return listing

    @server.tool(title="List studies", annotations=READ_ONLY)
    async def list_studies(ctx: Context) -> results.StudyList:
        """Every study in the server's storage, with its metric, trial count and best value."""
        with tool_errors():
            listing: results.StudyList = await anyio.to_thread.run_sync(
                results.list_studies, _state(ctx).ws
            )
            return listing

    @server.tool(
        title="Delete a study",
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=False,
        ),
    )
    async def delete_study(ctx: Context, study_name: StudyName) -> DeleteResult:
        """Delete a study, all its trials and its artifacts folder. Cannot be undone."""
        state = _state(ctx)
        with tool_errors():
            active = state.runs.active_on(study_name)
            if active is not None:
                raise StudyBusy(
                    f"run {active.id} is running on study '{study_name}'; cancel it first "
                    f"with cancel_run('{active.id}')"
                )
            removed = await anyio.to_thread.run_sync(studies.delete_study, state.ws, study_name)
            return DeleteResult(study_name=study_name, removed=removed)


def _register_run_tools(server: MCPServer) -> None:
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
            Field(ge=1, le=64, description="Parallel worker processes (default: server setting)."),
        ] = None,
        enqueue: Annotated[
            list[dict[str, Any]] | None,
            Field(max_length=100, description="Param sets to try first, e.g. a known good config."),
        ] = None,
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
        state = _state(ctx)
        with tool_errors():
            workers = n_workers or state.settings.default_workers
            if workers > state.settings.max_workers:
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
            )
            run = await state.runs.start(study_name, plan)
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
        state = _state(ctx)
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
        state = _state(ctx)
        with tool_errors():
            run = state.runs.get(run_id)
            await state.runs.cancel(run)
            return await state.runs.report(run)


def _wait(state: AppState, wait_s: float | None) -> float:
    return state.settings.default_wait_s if wait_s is None else wait_s


def _progress_sink(ctx: Context) -> Any:
    async def sink(event: RunEvent) -> None:
        if event.kind != "started":
            await ctx.report_progress(event.finished, event.total, event.message)

    return sink


def _register_resources(server: MCPServer, ws: Workspace) -> None:
    @server.resource(
        "seqtune://studies", mime_type="application/json", description="Every study in the storage."
    )
    async def studies_resource() -> str:
        listing = await anyio.to_thread.run_sync(results.list_studies, ws)
        return listing.model_dump_json(indent=2)

    @server.resource(
        "seqtune://studies/{study_name}",
        mime_type="application/json",
        description="One study's configuration, data splits and progress.",
    )
    async def study_resource(study_name: str) -> str:
        try:
            summary = await anyio.to_thread.run_sync(studies.study_summary, ws, study_name)
        except SeqtuneError as exc:
            raise ResourceError(str(exc)) from exc
        return summary.model_dump_json(indent=2)

    @server.prompt(title="Tune a BiLSTM end to end")
    def tune_bilstm(
        dataset: str = "builtin:gait", n_trials: int = 40, metric: str = "val_accuracy"
    ) -> str:
        """Walks an assistant through the full tuning flow with seqtune's tools."""
        return PROMPT.format(dataset=json.dumps(dataset), n_trials=n_trials, metric=metric)


PROMPT = """\
Tune a BiLSTM classifier on the dataset {dataset} with seqtune, step by step:
1. Call describe_dataset(dataset={dataset}). Report its shape, classes and imbalance; stop
   and explain if it has errors or warnings that matter.
2. Call create_study with a short descriptive study_name, that dataset and metric "{metric}"
   (prefer val_balanced_accuracy or val_pr_auc when classes are very imbalanced). Keep the
   default search space unless the user asked otherwise.
3. Call run_trials(study_name, n_trials={n_trials}). If the result's state is "running", call
   get_run(run_id, wait_s=45) until it is completed, failed or cancelled. Summarise
   progress: complete, pruned and failed trials, and the best value.
4. Call best_params(study_name) and list_trials(study_name, order="best", limit=5).
   Explain which hyperparameters mattered and whether more trials look worthwhile.
Never evaluate on the test split while tuning: it is reserved for the final model.
"""
