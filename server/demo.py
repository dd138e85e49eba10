"""`seqtune demo`: the whole flow on builtin:gait, driven over MCP like an assistant would.

It starts `seqtune serve` as a subprocess, talks to it with the MCP client
over stdio, and draws a progress bar from the server's progress
notifications.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

from tools.errors import SeqtuneError


def server_params(workspace: Path, extra: list[str] | None = None) -> StdioServerParameters:
    """`seqtune serve` in this interpreter, logging to our stderr."""
    import os

    env = {k: v for k, v in os.environ.items() if k.startswith(("SEQTUNE_", "TF_", "PYTHON"))}
    args = ["-m", "server.cli", "serve", "--workspace", str(workspace), "--log-level", "WARNING"]
    return StdioServerParameters(command=sys.executable, args=args + (extra or []), env=env)


class ProgressBar:
    def __init__(self, total: int) -> None:
        self.total, self.started = total, time.monotonic()

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        total = total or self.total
        filled = int(20 * progress / total) if total else 0
        elapsed = time.monotonic() - self.started
        bar = "#" * filled + "-" * (20 - filled)
        text = (message or "")[:56]
        sys.stdout.write(f"\r[{bar}] {int(progress)}/{int(total)} {elapsed:4.0f}s {text:<56}")
        sys.stdout.flush()


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        text = result.content[0].text if result.content else "unknown error"  # type: ignore[union-attr]
        raise SeqtuneError(f"{tool} failed: {text}")
    structured: dict[str, Any] | None = result.structured_content
    assert structured is not None
    return structured


async def run_demo(args: argparse.Namespace, workspace: Path) -> None:
    extra = ["--trainer", args.trainer] if args.trainer else []
    print(
        f"seqtune demo: tuning a BiLSTM on builtin:gait (synthetic gait sequences)\n"
        f"workspace: {workspace}\nstarting the MCP server (workers import TensorFlow once)..."
    )
    async with Client(server_params(workspace, extra), read_timeout_seconds=3600) as client:
        data = await call(client, "describe_dataset", dataset="builtin:gait")
        print(
            f"dataset: {data['n_sequences']} sequences x {data['timesteps']} steps x "
            f"{data['features']} axes; classes {data['classes']}"
        )
        study = await call(
            client,
            "create_study",
            study_name=args.study,
            dataset="builtin:gait",
            metric="val_balanced_accuracy",
            max_epochs=args.epochs,
            patience=4,
            seed=42,
            imbalance="smote",
            n_startup_trials=4,
            pruner={"name": "median", "n_startup_trials": 3, "n_warmup_steps": 3},
        )
        print(
            f"study '{study['study_name']}': splits "
            + ", ".join(f"{k} {v['classes']}" for k, v in study["splits"].items())
        )
        result = await client.call_tool(
            "run_trials",
            {
                "study_name": args.study,
                "n_trials": args.trials,
                "n_workers": args.workers,
                "wait_s": 3600,
            },
            progress_callback=ProgressBar(args.trials),
        )
        print()
        if result.is_error:
            raise SeqtuneError(str(result.content))
        report = result.structured_content
        assert report is not None
        _print_run(report)
        best = await call(client, "best_params", study_name=args.study)
        _print_best(best)
        print("\nretraining the best configuration, then one evaluation on the test split...")
        final = await client.call_tool(
            "retrain_and_evaluate",
            {"study_name": args.study, "max_epochs": args.final_epochs, "patience": 8},
            progress_callback=ProgressBar(args.final_epochs),
        )
        print()
        if final.is_error:
            raise SeqtuneError(str(final.content))
        assert final.structured_content is not None
        _print_final(final.structured_content)
        plots = await call(client, "plot_history", study_name=args.study, kind="all", format="html")
        print("\nplots (PNG for viewing, HTML for interactive exploration):")
        for plot in plots["plots"]:
            print(f"  {plot['kind']:<22} {plot['png_path']}")
        for kind, why in plots["skipped"].items():
            print(f"  {kind:<22} skipped: {why}")
        _print_storage(study)


def _print_run(report: dict[str, Any]) -> None:
    print(f"\nrun {report['run_id']}: {report['state']} in {report['elapsed_s']:.0f}s")
    print(f"{'trial':>5} {'state':<9} {'value':>7} {'epochs':>6} {'secs':>6}  params")
    for trial in report["new_trials"]:
        value = f"{trial['value']:.4f}" if trial["value"] is not None else "-"
        params = ", ".join(f"{k}={_short(v)}" for k, v in trial["params"].items())
        print(
            f"{trial['number']:>5} {trial['state']:<9} {value:>7} {trial['epochs']:>6} "
            f"{trial['seconds'] or 0:>6.1f}  {params}"
        )
    counts = {k: v for k, v in report["counts"].items() if v}
    print(f"study trials by state: {counts}")


def _print_best(best: dict[str, Any]) -> None:
    print(f"\nbest trial {best['best_trial']}: {best['metric']} = {best['best_value']:.4f}")
    for name, value in best["params"].items():
        print(f"  {name:<18} {_short(value)}")


def _print_final(final: dict[str, Any]) -> None:
    print(
        f"final model: {final['epochs_trained']} epochs, best checkpoint at epoch "
        f"{final['best_epoch']} ({final['monitor']})"
    )
    print(f"{'':<22}{'val':>8}{'test':>8}")
    for name in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc"):
        val, test = final["val"][name], final["test"][name]
        print(f"  {name:<20}{_metric(val):>8}{_metric(test):>8}")
    test = final["test"]
    print(f"  test confusion matrix (rows: true {test['labels']}): {test['confusion_matrix']}")
    tuned = final["tuned_threshold"]
    if tuned:
        print(
            f"  threshold chosen on val for best F1: {tuned['threshold']:.3f} -> test F1 "
            f"{tuned['test']['f1']:.3f}, balanced accuracy {tuned['test']['balanced_accuracy']:.3f}"
        )
    for warning in final["warnings"]:
        print(f"  warning: {warning}")
    print("artifacts:")
    for name, path in final["artifacts"].items():
        print(f"  {name:<12} {path}")


def _metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_storage(study: dict[str, Any]) -> None:
    storage = study["storage"]
    print(f"\nstudy database: {storage}")
    print(f"try: optuna best-trial --study-name {study['study_name']} --storage {storage}")


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
