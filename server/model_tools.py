"""MCP tools for the final model and the pictures: retrain_and_evaluate, predict, plot_history."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context, Image
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from server.errors import tool_errors
from server.state import READ_ONLY, StudyName, app_state
from tools import predict as predict_mod
from tools import retrain
from tools.history_plots import PlotReport
from tools.history_plots import plot_history as plot_history_files
from tools.plots import PLOT_KINDS
from tools.schemas import CsvOptions


def _epoch_progress(ctx: Context, label: str) -> Any:
    async def report(update: dict[str, Any]) -> None:
        if "epoch" not in update:
            return
        logs = update.get("logs", {})
        shown = ", ".join(f"{k} {v:.4f}" for k, v in logs.items() if k in _SHOWN)
        epoch, total = update["epoch"] + 1, update.get("total")
        await ctx.report_progress(epoch, total, f"{label} epoch {epoch}/{total}: {shown}")

    return report


_SHOWN = ("loss", "val_loss", "accuracy", "val_accuracy")


def register_model_tools(server: MCPServer) -> None:
    @server.tool(
        title="Retrain the best model and evaluate it on the test split",
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=False,
        ),
    )
    async def retrain_and_evaluate(
        ctx: Context,
        study_name: StudyName,
        trial_number: Annotated[
            int | None,
            Field(ge=0, description="Trial whose params to use (default: the best trial)."),
        ] = None,
        max_epochs: Annotated[int, Field(ge=1, le=5000)] = 150,
        patience: Annotated[
            int, Field(ge=1, le=1000, description="EarlyStopping patience on val_loss.")
        ] = 12,
        reduce_lr_patience: Annotated[int, Field(ge=1, le=1000)] = 6,
        reduce_lr_factor: Annotated[float, Field(gt=0, lt=1)] = 0.5,
        min_lr: Annotated[float, Field(gt=0, le=1)] = 1e-6,
        seed: Annotated[
            int | None, Field(ge=0, le=2**31 - 1, description="Default: the study seed.")
        ] = None,
    ) -> retrain.RetrainResult:
        """Train a fresh model with the chosen trial's params (EarlyStopping, ModelCheckpoint,
        ReduceLROnPlateau on the val split), then evaluate it ONCE on the held-out test split.
        Saves model.keras and JSON artifacts; warns when the test split was evaluated before."""
        state = app_state(ctx)
        with tool_errors():
            request = retrain.RetrainRequest(
                study_name=study_name,
                trial_number=trial_number,
                max_epochs=max_epochs,
                patience=patience,
                reduce_lr_patience=reduce_lr_patience,
                reduce_lr_factor=reduce_lr_factor,
                min_lr=min_lr,
                seed=seed,
            )
            return await retrain.retrain_and_evaluate(
                state.ws, state.pool, request, _epoch_progress(ctx, "retrain")
            )

    @server.tool(
        title="Predict with the final model",
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    async def predict(
        ctx: Context,
        study_name: StudyName,
        dataset: Annotated[
            str,
            Field(
                max_length=4096,
                description=".npz (X, optionally y) or .csv inside the server's data folders.",
            ),
        ],
        csv: Annotated[
            CsvOptions | None, Field(description="Columns of a long-format CSV.")
        ] = None,
    ) -> predict_mod.PredictResult:
        """Predict labels and probabilities with the study's final model (same scaling as in
        training). Returns a summary; the full predictions go to CSV and NPZ files."""
        state = app_state(ctx)
        with tool_errors():
            return await predict_mod.predict(
                state.ws, state.pool, study_name, dataset, csv, _epoch_progress(ctx, "predict")
            )


def register_plot_tool(server: MCPServer) -> None:
    @server.tool(title="Plot a study", annotations=READ_ONLY)
    async def plot_history(
        ctx: Context,
        study_name: StudyName,
        kind: Annotated[
            Literal["all", *PLOT_KINDS],  # type: ignore[valid-type]
            Field(description="Which plot; 'all' draws every kind that can be drawn now."),
        ] = "optimization_history",
        format: Annotated[
            Literal["png", "html"],
            Field(
                description="'png': return the images inline (and the file paths); "
                "'html': return only the paths of the saved PNG and interactive HTML files."
            ),
        ] = "png",
    ) -> Annotated[CallToolResult, PlotReport]:
        """Optimization history, param importances, parallel coordinate, intermediate values,
        slice, contour, timeline, or the final model's training curves. Works while a run
        is going. Saves PNG and interactive plotly HTML in the study's plots folder."""
        state = app_state(ctx)
        with tool_errors():
            report, images = await anyio.to_thread.run_sync(
                plot_history_files, state.ws, study_name, kind
            )
        lines = [f"{p.title}: {p.png_path} (interactive: {p.html_path})" for p in report.plots]
        lines += [f"skipped {k}: {why}" for k, why in report.skipped.items()]
        content: list[Any] = [TextContent(type="text", text="\n".join(lines))]
        if format == "png":
            content += [Image(data=png, format="png").to_image_content() for png in images]
        return CallToolResult(content=content, structured_content=report.model_dump())
