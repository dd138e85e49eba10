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

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from server.model_tools import register_model_tools, register_plot_tool
from server.run_tools import register_run_tools
from server.runs import RunManager
from server.settings import Settings
from server.state import AppState
from server.study_tools import register_study_tools
from server.workers import WorkerPool
from tools import results, studies
from tools.errors import SeqtuneError, StorageUnavailable
from tools.trials import fail_orphans_in_all_studies
from tools.workspace import Workspace

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
seqtune tunes Keras BiLSTM sequence classifiers with Optuna. Typical flow:
describe_dataset -> create_study -> run_trials (returns a run id; if state is
'running', poll get_run) -> best_params -> list_trials -> retrain_and_evaluate
(the only step that touches the test split) -> plot_history -> predict.
Studies persist across sessions; list_studies shows them."""


class Lifecycle:
    """Lets a signal handler end runs and workers even while stdin reading blocks."""

    def __init__(self) -> None:
        self.states: list[AppState] = []

    async def shutdown(self) -> None:
        for state in list(self.states):
            await state.aclose()


def create_server(settings: Settings, lifecycle: Lifecycle | None = None) -> MCPServer:
    ws = settings.workspace_obj()
    lifecycle = lifecycle or Lifecycle()

    @asynccontextmanager
    async def lifespan(server: MCPServer) -> AsyncIterator[AppState]:
        try:
            orphans = await anyio.to_thread.run_sync(fail_orphans_in_all_studies, ws)
        except StorageUnavailable as exc:
            log.error("%s", exc)  # server configuration: nothing can work without it
            raise SystemExit(2) from None
        for study_name, numbers in orphans.items():
            log.warning(
                "study '%s': trials %s were left RUNNING by a process that died; marked FAIL",
                study_name,
                numbers,
            )
        async with WorkerPool(settings.pool_settings()) as pool, anyio.create_task_group() as tg:
            state = AppState(settings, ws, pool, RunManager(ws, tg))
            lifecycle.states.append(state)
            try:
                yield state
            finally:
                lifecycle.states.remove(state)
                await state.aclose()
                tg.cancel_scope.cancel()

    server = MCPServer("seqtune", instructions=INSTRUCTIONS, lifespan=lifespan, log_level="INFO")
    register_study_tools(server)
    register_run_tools(server)
    register_model_tools(server)
    register_plot_tool(server)
    _register_resources(server, ws)
    return server


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
