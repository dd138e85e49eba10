"""`seqtune`: serve the MCP server, run the demo, or drive studies by hand."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio

from server.settings import Settings
from tools.workspace import default_workspace

log = logging.getLogger("seqtune")


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        raise SystemExit(2)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        stream=sys.stderr,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        args.handler(args)
    except BaseExceptionGroup as group:  # a SystemExit raised inside a task group
        exits = group.subgroup(SystemExit)
        if exits is None:
            raise
        raise _first_leaf(exits) from None


def _first_leaf(group: BaseExceptionGroup[SystemExit]) -> SystemExit:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _settings(args: argparse.Namespace, *, cwd_is_data_root: bool = False) -> Settings:
    roots = [Path(p) for p in (args.data_root or [])]
    if cwd_is_data_root and not roots:
        roots = [Path.cwd()]
    return Settings.from_env(
        workspace=args.workspace,
        storage_url=args.storage,
        data_roots=tuple(roots) or None,
        default_workers=getattr(args, "workers", None),
        trainer=args.trainer,
        dask_scheduler=getattr(args, "dask_scheduler", None),
    )


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workspace",
        type=Path,
        help="folder for the SQLite file and "
        "artifacts (env SEQTUNE_WORKSPACE; default ~/.local/share/seqtune)",
    )
    parser.add_argument(
        "--storage",
        help="Optuna storage URL (env SEQTUNE_STORAGE; default sqlite:///<workspace>/seqtune.db)",
    )
    parser.add_argument(
        "--data-root",
        action="append",
        type=Path,
        help="folder datasets may be read from (repeatable; env SEQTUNE_DATA_ROOTS)",
    )
    parser.add_argument(
        "--trainer",
        choices=["keras", "fake"],
        help="'fake' draws learning curves without TensorFlow (for trying the tools quickly)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqtune", description=__doc__)
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="run the MCP server (stdio, or streamable HTTP)")
    _common(serve)
    serve.add_argument("--workers", type=int, help="default parallel workers (env SEQTUNE_WORKERS)")
    serve.add_argument(
        "--dask-scheduler",
        metavar="ADDRESS",
        help="Dask scheduler for run_trials(executor='dask'), e.g. tcp://10.0.0.5:8786 "
        "(env SEQTUNE_DASK_SCHEDULER; needs a PostgreSQL --storage)",
    )
    serve.add_argument(
        "--transport",
        choices=["stdio", "http"],
        default="stdio",
        help="stdio (default), or MCP streamable HTTP at http://HOST:PORT/mcp",
    )
    serve.add_argument("--host", help="http: address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="http: port (default 8000)")
    serve.add_argument(
        "--token-file",
        type=Path,
        help="http: file holding the bearer token clients must send (env SEQTUNE_HTTP_TOKEN)",
    )
    serve.set_defaults(handler=_serve)

    demo = sub.add_parser("demo", help="tune a BiLSTM on builtin:gait through the MCP server")
    _common(demo)
    demo.add_argument("--trials", type=int, default=12)
    demo.add_argument("--workers", type=int, default=2)
    demo.add_argument("--epochs", type=int, default=12)
    demo.add_argument("--final-epochs", type=int, default=40)
    demo.add_argument("--study", default="gait-demo")
    demo.set_defaults(handler=_demo)

    from server import manual

    manual.add_commands(sub, _common, _settings)
    return parser


def _serve(args: argparse.Namespace) -> None:
    if args.transport == "http":
        _serve_http(args)
        return
    if (args.host, args.port, args.token_file) != (None, None, None):
        from server.http import refuse

        refuse("--host, --port and --token-file need --transport http")
    server, lifecycle = _start_server(args, "on stdio")

    async def stop_on_signal() -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("received %s: ending runs and workers", signal.Signals(signum).name)
                with anyio.move_on_after(60):
                    await lifecycle.shutdown()
                # The MCP stdio reader is a thread blocked on stdin that cancellation
                # cannot interrupt: leave now that nothing is left running.
                logging.shutdown()
                os._exit(0)

    async def serve() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_on_signal)
            await server.run_stdio_async()
            tg.cancel_scope.cancel()

    anyio.run(serve)


def _start_server(args: argparse.Namespace, where: str) -> tuple[Any, Any]:
    """The MCP server and its lifecycle, built from the flags; logs where it serves."""
    from server.app import Lifecycle, create_server

    settings = _settings(args)
    lifecycle = Lifecycle()
    server = create_server(settings, lifecycle)
    ws = settings.workspace_obj()
    log.info("seqtune serving %s; workspace %s; storage %s", where, ws.root, ws.storage_label)
    return server, lifecycle


def _serve_http(args: argparse.Namespace) -> None:
    from server import http

    options = http.http_options(args.host, args.port, args.token_file)  # refuses bad setups
    token = "bearer token required" if options.token else "no token: loopback only"
    server, lifecycle = _start_server(args, f"MCP over streamable HTTP at {options.url} ({token})")
    anyio.run(http.serve, server, lifecycle, options)


def _demo(args: argparse.Namespace) -> None:
    from server.demo import run_demo

    workspace = args.workspace or default_workspace()
    anyio.run(run_demo, args, workspace.expanduser().resolve())


def print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, default=str))


if __name__ == "__main__":
    main()
