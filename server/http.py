"""`seqtune serve --transport http`: MCP streamable HTTP (path /mcp) behind a bearer token.

One uvicorn server runs `MCPServer.streamable_http_app()`. Its session manager
enters the MCPServer lifespan once for the whole app, so every session shares
one WorkerPool and one RunManager: a run started by one client can be polled
or cancelled by another.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import anyio
import uvicorn
from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from sse_starlette.sse import AppStatus
from starlette.types import ASGIApp, Receive, Scope, Send

from server.app import Lifecycle

log = logging.getLogger("seqtune")

TOKEN_ENV = "SEQTUNE_HTTP_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# After the runs have ended, uvicorn waits this long for connections to close
# (an SSE stream mid-event, a slow tool call) before cancelling them.
GRACE_S = 3
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # what fits in one header value as-is


@dataclass(frozen=True)
class HttpOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/mcp"


def refuse(message: str) -> NoReturn:
    """A configuration the user must fix: one line on stderr, exit code 2 (like argparse)."""
    print(f"seqtune serve: {message}", file=sys.stderr)
    raise SystemExit(2)


def http_options(host: str | None, port: int | None, token_file: Path | None) -> HttpOptions:
    host = host or DEFAULT_HOST
    token = read_token(token_file)
    if token is None and host not in LOOPBACK_HOSTS:
        refuse(
            f"refusing to serve on {host} without a token (anyone who can reach it could run "
            f"and delete studies): set {TOKEN_ENV} or pass --token-file, or use --host 127.0.0.1"
        )
    return HttpOptions(host=host, port=DEFAULT_PORT if port is None else port, token=token)


def read_token(token_file: Path | None) -> str | None:
    """The token from --token-file (it wins, as flags do over env vars) or SEQTUNE_HTTP_TOKEN."""
    if token_file is None:
        raw = os.environ.get(TOKEN_ENV)
        if raw is None:
            return None
        return _checked(raw.strip(), f"{TOKEN_ENV} is set but empty; put a token in it or unset it")
    path = token_file.expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        refuse(f"--token-file {path}: no such file (create one: openssl rand -hex 32 > {path})")
    except (OSError, UnicodeDecodeError) as exc:
        refuse(f"--token-file {path}: cannot read it: {exc}")
    if path.stat().st_mode & 0o077:
        log.warning("token file %s is readable by other users; chmod 600 it", path)
    return _checked(text.strip(), f"--token-file {path} is empty; write the token into it")


def _checked(token: str, empty_message: str) -> str:
    if not token:
        refuse(empty_message)
    if not _TOKEN_CHARS.fullmatch(token):
        refuse("the HTTP token must be one line of printable ASCII without spaces")
    return token


class BearerTokenMiddleware:
    """Pure ASGI: every HTTP request must carry `Authorization: Bearer <token>`, else 401.

    The 401 body is a JSON-RPC error, so MCP clients show its message rather
    than a bare status. (uvicorn runs with `ws="none"`: every request is HTTP.)
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        problem = self._problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        log.warning("401 for %s %s from %s: %s", scope["method"], scope["path"], client, problem)
        await _unauthorized(send, problem, invalid=problem.startswith("wrong"))

    def _problem(self, scope: Scope) -> str | None:
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if header is None:
            return "missing header 'Authorization: Bearer <token>'"
        scheme, _, value = header.partition(b" ")
        if scheme.lower() != b"bearer" or not value.strip():
            return "the Authorization header must be 'Bearer <token>'"
        if not hmac.compare_digest(value.strip(), self._token):
            return "wrong bearer token"
        return None


async def _unauthorized(send: Send, problem: str, *, invalid: bool) -> None:
    error = {"code": -32001, "message": f"unauthorized: {problem}"}
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode()
    # RFC 6750: no error code when no credentials were sent.
    challenge = b'Bearer realm="seqtune"' + (b', error="invalid_token"' if invalid else b"")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", challenge),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def transport_security(host: str) -> TransportSecuritySettings:
    """mcp's Host/Origin (DNS-rebinding) checks, on for loopback binds only.

    Clients reach a non-loopback bind under names we cannot list (LAN address,
    DNS name, proxy); there the token protects, as a rebinding page cannot send it.
    """
    if host not in LOOPBACK_HOSTS:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    names = ("127.0.0.1", "localhost", "[::1]")
    return TransportSecuritySettings(
        allowed_hosts=[h for n in names for h in (n, f"{n}:*")],
        allowed_origins=[o for n in names for o in (f"http://{n}", f"http://{n}:*")],
    )


def build_app(server: MCPServer, options: HttpOptions) -> ASGIApp:
    app: ASGIApp = server.streamable_http_app(
        host=options.host, transport_security=transport_security(options.host)
    )
    return BearerTokenMiddleware(app, options.token) if options.token else app


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: ours end runs and workers first.

    Its own would only stop accepting requests, and re-raise the signal after
    shutdown (so the process would die by SIGTERM rather than exit 0).
    """

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(server: MCPServer, lifecycle: Lifecycle, options: HttpOptions) -> None:
    config = uvicorn.Config(
        build_app(server, options),
        host=options.host,
        port=options.port,
        ws="none",
        lifespan="on",
        log_config=None,  # keep seqtune's logging setup
        timeout_graceful_shutdown=GRACE_S,
    )
    web = _Uvicorn(config)
    failed: SystemExit | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(_stop_on_signal, web, lifecycle)
        try:
            await web.serve()
        except SystemExit as exc:  # uvicorn could not start (port in use...); it logged why
            failed = exc
        tg.cancel_scope.cancel()
    if failed is not None:
        raise failed


async def _stop_on_signal(web: uvicorn.Server, lifecycle: Lifecycle) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if web.should_exit:  # a second signal: skip the wait for connections
                web.force_exit = True
                continue
            log.info("received %s: ending runs and workers", signal.Signals(signum).name)
            # Before uvicorn stops: a run_trials call still waiting gets its
            # 'cancelled' report. The lifespan's exit repeats this for anything newer.
            with anyio.move_on_after(60):
                await lifecycle.shutdown()
            web.should_exit = True
            # mcp's SSE responses (sse_starlette) end only when told; otherwise each
            # open GET stream would hold uvicorn for GRACE_S, then die with a traceback.
            AppStatus.should_exit = True
