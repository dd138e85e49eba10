"""The one place where seqtune's exceptions become MCP tool errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from tools.errors import SeqtuneError


@contextmanager
def tool_errors() -> Iterator[None]:
    """Expected failures keep their actionable message; anything else stays generic.

    Unexpected exceptions pass through: the MCP server logs their traceback on
    stderr and answers with a generic error, so internals never leak.
    """
    try:
        yield
    except SeqtuneError as exc:
        raise ToolError(str(exc)) from exc
    except ValidationError as exc:
        raise ToolError(validation_message(exc)) from exc


def validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "value"
        parts.append(f"{where}: {error['msg']}")
    return "invalid arguments: " + "; ".join(parts)
