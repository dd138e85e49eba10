"""MCP tools that create, inspect and delete studies."""

from __future__ import annotations

from typing import Annotated, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from server.errors import tool_errors
from server.state import READ_ONLY, StudyName, app_state
from tools import results, studies
from tools.data import DatasetSummary
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


class DeleteResult(BaseModel):
    study_name: str
    removed: list[str]


def register_study_tools(server: MCPServer) -> None:
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
        ws = app_state(ctx).ws
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
        ws = app_state(ctx).ws
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
                results.best_params, app_state(ctx).ws, study_name
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
                lambda: results.list_trials(app_state(ctx).ws, study_name, states, limit, order)
            )
            return listing

    @server.tool(title="List studies", annotations=READ_ONLY)
    async def list_studies(ctx: Context) -> results.StudyList:
        """Every study in the server's storage, with its metric, trial count and best value."""
        with tool_errors():
            listing: results.StudyList = await anyio.to_thread.run_sync(
                results.list_studies, app_state(ctx).ws
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
        state = app_state(ctx)
        with tool_errors():
            state.runs.ensure_idle(study_name)
            removed = await anyio.to_thread.run_sync(studies.delete_study, state.ws, study_name)
            return DeleteResult(study_name=study_name, removed=removed)
