"""The CLI's hand-driven steps: the same tools as the MCP server, called in-process.

seqtune describe builtin:gait
seqtune create my-study --dataset data/walks.npz --metric val_f1
seqtune run my-study --trials 40 --workers 2
seqtune best my-study
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import anyio

from server.settings import Settings
from server.workers import WorkerPool
from tools import results, studies
from tools.errors import InvalidConfig, SeqtuneError
from tools.schemas import METRICS, PrunerSpec, SamplerSpec
from tools.trials import RunEvent, RunPlan, TrialInfo, TrialRun

SettingsFactory = Callable[..., Settings]


def add_commands(
    sub: Any, common: Callable[[argparse.ArgumentParser], None], settings: SettingsFactory
) -> None:
    def command(name: str, help_text: str, handler: Callable[..., None]) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        common(parser)
        parser.set_defaults(handler=lambda args: _guarded(handler, args, settings))
        return parser

    p = command("describe", "validate and summarise a dataset", _describe)
    p.add_argument("dataset")
    p = command("create", "create a study", _create)
    p.add_argument("study")
    p.add_argument("--dataset", default="builtin:gait")
    p.add_argument("--metric", default="val_accuracy", choices=METRICS)
    p.add_argument("--sampler", default="tpe", choices=["tpe", "random", "cmaes", "gp", "qmc"])
    p.add_argument(
        "--pruner",
        default="median",
        choices=["median", "percentile", "successive_halving", "hyperband", "patient", "none"],
    )
    p.add_argument(
        "--imbalance",
        default="smote",
        choices=["smote", "class_weight", "smote+class_weight", "none"],
    )
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--search-space", type=json.loads, help="JSON overrides of the search space")
    p = command("run", "run trials with a live progress bar", _run)
    p.add_argument("study")
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--timeout", type=float)
    p.add_argument("--workers", type=int, default=1)
    p = command("best", "show the best trial", _best)
    p.add_argument("study")
    p = command("trials", "list trials", _trials)
    p.add_argument("study")
    p.add_argument("--limit", type=int, default=20)
    command("studies", "list studies", _studies)
    p = command(
        "worker",
        "join a study from this machine: train its trials here, on the shared --storage",
        _worker,
    )
    p.add_argument("study")
    p.add_argument("--trials", type=int, help="trials to train here (default: until --timeout)")
    p.add_argument("--timeout", type=float, help="start no new trial after this many seconds")
    p.add_argument("--dataset", help="this machine's copy of the study's dataset (same sha256)")


def _guarded(
    handler: Callable[..., None], args: argparse.Namespace, settings: SettingsFactory
) -> None:
    try:
        handler(args, settings(args, cwd_is_data_root=True))
    except SeqtuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def _dump(model: Any) -> None:
    print(model.model_dump_json(indent=2))


def _describe(args: argparse.Namespace, settings: Settings) -> None:
    _dump(studies.describe(settings.workspace_obj(), args.dataset))


def _create(args: argparse.Namespace, settings: Settings) -> None:
    request = studies.StudyRequest(
        study_name=args.study,
        dataset=args.dataset,
        metric=args.metric,
        sampler=SamplerSpec(name=args.sampler),
        pruner=PrunerSpec(name=args.pruner),
        imbalance=args.imbalance,
        max_epochs=args.epochs,
        patience=args.patience,
        seed=args.seed,
        search_space=args.search_space,
    )
    _dump(studies.create_study(settings.workspace_obj(), request))


def _run(args: argparse.Namespace, settings: Settings) -> None:
    plan = RunPlan(
        n_trials=args.trials,
        timeout_s=args.timeout,
        n_workers=args.workers,
        max_consecutive_failures=settings.max_consecutive_failures,
    )

    def show(event: RunEvent) -> None:
        if event.kind == "finished":
            total = event.total or event.finished
            print(f"[{event.finished}/{total}] {event.message}", flush=True)

    async def go() -> None:
        async with WorkerPool(settings.pool_settings()) as pool:
            run = TrialRun(settings.workspace_obj(), args.study, pool, plan, show)
            state = await run.run()
            if state.error:
                raise SeqtuneError(state.error)

    anyio.run(go)
    _best(args, settings)


def _best(args: argparse.Namespace, settings: Settings) -> None:
    _dump(results.best_params(settings.workspace_obj(), args.study))


def _trials(args: argparse.Namespace, settings: Settings) -> None:
    _dump(results.list_trials(settings.workspace_obj(), args.study, limit=args.limit))


def _worker(args: argparse.Namespace, settings: Settings) -> None:
    from tools.join import join_study

    ws = settings.workspace_obj()
    if ws.is_sqlite:
        raise InvalidConfig(
            "seqtune worker writes to the study itself, beside the server: give it the "
            "PostgreSQL storage every machine shares (--storage postgresql://...)"
        )
    if args.trials is None and args.timeout is None:
        raise InvalidConfig("give --trials, --timeout, or both")

    def show(info: TrialInfo) -> None:
        value = "" if info.value is None else f", value {info.value:.4f}"
        print(
            f"trial {info.number} {info.state.lower()} after {info.epochs} epochs{value}",
            flush=True,
        )

    report = join_study(
        ws, args.study, args.trials, args.timeout, settings.trainer, args.dataset, show
    )
    _dump(report)


def _studies(args: argparse.Namespace, settings: Settings) -> None:
    _dump(results.list_studies(settings.workspace_obj()))
