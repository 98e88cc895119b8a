"""MCP servers as tool sources: their connection parameters, and a client that
lists their tools and calls them (the protocol side; no runtime here).

The official ``mcp`` package (``pip install 'flock-es[mcp]'``) is imported only
when a server is first connected, so programs without MCP, ``flock-es --help``
and the TUI never load it. A server is started (stdio) or reached (streamable
HTTP) on the first tool list or call of a run, and the connection lives in a
task of its own until ``McpServers.aclose()``: the ``mcp`` transports are
anyio context managers that must be left by the task that entered them.

Example::

    servers = McpServers()
    servers.add(McpServerConfig("files", StdioServerParameters(command="python",
                                                               args=["server.py"])))
    tools = await servers.list_tools("files")     # [{"name", "description", "input_schema"}]
    text, error = await servers.call_tool("files", "read", '{"path": "a.txt"}')
    await servers.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, TextIO, cast

from pydantic import BaseModel, ConfigDict, Field

from flock_es.errors import ConfigError, McpServerError

if TYPE_CHECKING:
    from mcp import ClientSession

__all__ = [
    "TOOL_SEPARATOR",
    "McpServerConfig",
    "McpServers",
    "ServerParameters",
    "StdioServerParameters",
    "StreamableHttpServerParameters",
]

# Flock's tool namespacing (its AD003): the model sees ``{server}__{tool}``.
TOOL_SEPARATOR = "__"
# How long a server may take to start and answer ``initialize``.
START_TIMEOUT = 30.0
# JSON-RPC error codes that mean the server is gone, not that the call was bad
# (mcp.types.CONNECTION_CLOSED, and the 408 a read timeout reports).
_TRANSPORT_CODES = frozenset({-32000, 408})


class StdioServerParameters(BaseModel):
    """A server run as a subprocess speaking MCP on stdin/stdout (as Flock's).

    Example: ``StdioServerParameters(command="python", args=["examples/mcp_server.py"])``.
    ``env`` is added to the default environment the ``mcp`` package passes on.
    """

    model_config = ConfigDict(extra="forbid")

    transport_type: Literal["stdio"] = "stdio"
    command: str
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] | None = None
    cwd: str | None = None
    encoding: str = "utf-8"
    encoding_error_handler: Literal["strict", "ignore", "replace"] = "strict"


class StreamableHttpServerParameters(BaseModel):
    """A server reached over MCP's streamable HTTP transport (as Flock's).

    Example: ``StreamableHttpServerParameters(url="http://127.0.0.1:8000/mcp")``.
    """

    model_config = ConfigDict(extra="forbid")

    transport_type: Literal["streamable_http"] = "streamable_http"
    url: str
    headers: dict[str, Any] | None = None
    timeout: float = 5
    sse_read_timeout: float = 60 * 5
    terminate_on_close: bool = True


ServerParameters = StdioServerParameters | StreamableHttpServerParameters


def as_parameters(name: str, params: Any) -> ServerParameters:
    """Our parameters from ours, from ``mcp``'s ``StdioServerParameters``, or from a dict."""
    if isinstance(params, StdioServerParameters | StreamableHttpServerParameters):
        return params
    data = params.model_dump() if isinstance(params, BaseModel) else params
    if not isinstance(data, dict):
        raise ConfigError(
            f"MCP server {name!r}: connection_params must be StdioServerParameters or "
            f"StreamableHttpServerParameters, got {type(params).__name__}"
        )
    data = {k: v for k, v in data.items() if v is not None}
    if "cwd" in data:
        data["cwd"] = str(data["cwd"])
    kind = data.get("transport_type") or ("streamable_http" if "url" in data else "stdio")
    model = StreamableHttpServerParameters if kind == "streamable_http" else StdioServerParameters
    try:
        return model.model_validate(data)
    except Exception as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"MCP server {name!r}: bad connection_params: {detail}") from None


@dataclass(slots=True)
class McpServerConfig:
    """One registered server (``Flock.add_mcp``)."""

    name: str
    params: ServerParameters
    tool_whitelist: list[str] | None = None
    read_timeout_seconds: float = 300
    enable_tools: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def _tool_dict(tool: Any) -> dict[str, Any]:
    return {
        "name": str(tool.name),
        "description": str(tool.description or ""),
        "input_schema": dict(tool.inputSchema or {"type": "object", "properties": {}}),
    }


def _result_text(result: Any) -> str:
    """The text of a ``CallToolResult``: its text parts, else its structured content."""
    parts: list[str] = []
    for item in result.content or ():
        text = getattr(item, "text", None)
        if isinstance(text, str):
            parts.append(text)
        else:
            parts.append(json.dumps(item.model_dump(mode="json"), ensure_ascii=False))
    if not parts and getattr(result, "structuredContent", None) is not None:
        parts.append(json.dumps(result.structuredContent, ensure_ascii=False))
    return "\n".join(parts)


@contextlib.asynccontextmanager
async def _http_session(
    params: StreamableHttpServerParameters, headers: dict[str, str]
) -> AsyncIterator[Any]:
    """``streamable_http_client`` with an httpx client of our timeouts and headers."""
    import httpx
    from mcp.client.streamable_http import streamable_http_client

    timeout = httpx.Timeout(params.timeout, read=params.sse_read_timeout)
    async with (
        httpx.AsyncClient(headers=headers, timeout=timeout, follow_redirects=True) as client,
        streamable_http_client(
            params.url, http_client=client, terminate_on_close=params.terminate_on_close
        ) as streams,
    ):
        yield streams


class _Connection:
    """One live session with one server, held open by its own task."""

    def __init__(self, config: McpServerConfig) -> None:
        self.config = config
        self.session: ClientSession | None = None
        self.closing = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.loop = asyncio.get_running_loop()
        self.stopped: BaseException | None = None
        # The server's stderr (FastMCP logs every request there), kept out of the
        # user's terminal; its last line explains a server that failed.
        self.errlog = cast(TextIO, tempfile.TemporaryFile("w+"))  # noqa: SIM115 (closed in serve)
        self.stderr_line = ""

    def last_stderr_line(self) -> str:
        """The server's last line on stderr: usually why it failed."""
        if self.errlog.closed:
            return self.stderr_line
        with contextlib.suppress(Exception):
            self.errlog.flush()
            self.errlog.seek(0)
            lines = [x.strip() for x in self.errlog.read().splitlines() if x.strip()]
            self.stderr_line = lines[-1] if lines else ""
        return self.stderr_line

    def transport(self) -> contextlib.AbstractAsyncContextManager[Any]:
        params = self.config.params
        if isinstance(params, StdioServerParameters):
            from mcp import StdioServerParameters as SdkStdio
            from mcp.client.stdio import stdio_client

            sdk = SdkStdio(**params.model_dump(exclude={"transport_type"}))
            return stdio_client(sdk, errlog=self.errlog)
        from mcp.client import streamable_http

        headers = {str(k): str(v) for k, v in (params.headers or {}).items()}
        if not hasattr(streamable_http, "streamable_http_client"):  # mcp < 1.24
            return streamable_http.streamablehttp_client(
                params.url,
                headers=headers or None,
                timeout=params.timeout,
                sse_read_timeout=params.sse_read_timeout,
                terminate_on_close=params.terminate_on_close,
            )
        return _http_session(params, headers)

    async def serve(self, ready: asyncio.Future[None]) -> None:
        try:
            from mcp import ClientSession

            async with contextlib.AsyncExitStack() as stack:
                streams = await stack.enter_async_context(self.transport())
                timeout = timedelta(seconds=self.config.read_timeout_seconds)
                session = await stack.enter_async_context(
                    ClientSession(streams[0], streams[1], read_timeout_seconds=timeout)
                )
                await session.initialize()
                self.session = session
                ready.set_result(None)
                await self.closing.wait()
        except BaseException as exc:  # reported to whoever waits; a stopped server is not a crash
            self.stopped = exc
            if not ready.done():
                ready.set_exception(exc)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
        finally:
            self.session = None
            self.last_stderr_line()
            self.errlog.close()

    async def close(self) -> None:
        self.closing.set()
        if self.task is not None and self.loop is asyncio.get_running_loop():
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self.task, 10)


def _describe(exc: BaseException) -> str:
    """One line for an exception, looking inside anyio's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class McpServers:
    """The MCP servers of one ``Flock``: configs, lazily opened connections, tools."""

    def __init__(self) -> None:
        self.configs: dict[str, McpServerConfig] = {}
        self._connections: dict[str, _Connection] = {}
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    def add(self, config: McpServerConfig) -> None:
        if config.name in self.configs:
            raise ConfigError(f"MCP server {config.name!r} is already registered")
        self.configs[config.name] = config

    def config(self, name: str) -> McpServerConfig:
        try:
            return self.configs[name]
        except KeyError:
            raise ConfigError(f"no MCP server {name!r}; add it with flock.add_mcp()") from None

    async def _session(self, name: str) -> ClientSession:
        config = self.config(name)
        loop = asyncio.get_running_loop()
        # One lock per event loop (``flock.run()`` runs a loop per call): two tasks
        # that need the same server at once must not start it twice.
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:
            conn = self._connections.get(name)
            if conn is not None and conn.loop is loop and conn.session is not None:
                return conn.session
            if conn is not None and conn.loop is loop and conn.stopped is not None:
                why = conn.last_stderr_line() or _describe(conn.stopped)
                raise McpServerError(f"MCP server {name!r} stopped: {why}")
            return await self._open(config)

    async def _open(self, config: McpServerConfig) -> ClientSession:
        try:
            import mcp  # noqa: F401
        except ImportError:
            raise McpServerError(
                f"MCP server {config.name!r}: the mcp package is not installed; "
                "pip install 'flock-es[mcp]'"
            ) from None
        conn = self._connections[config.name] = _Connection(config)
        ready: asyncio.Future[None] = conn.loop.create_future()
        conn.task = asyncio.create_task(conn.serve(ready), name=f"mcp server {config.name}")
        try:
            await asyncio.wait_for(asyncio.shield(ready), START_TIMEOUT)
        except TimeoutError:
            conn.task.cancel()
            raise McpServerError(
                f"MCP server {config.name!r} did not start within {START_TIMEOUT:g} s"
            ) from None
        except Exception as exc:
            why = conn.last_stderr_line() or _describe(exc)
            raise McpServerError(f"MCP server {config.name!r} failed to start: {why}") from None
        assert conn.session is not None
        return conn.session

    async def list_tools(self, name: str) -> list[dict[str, Any]]:
        """``name``'s tools as ``{"name", "description", "input_schema"}`` dicts."""
        session = await self._session(name)
        try:
            result = await session.list_tools()
        except Exception as exc:
            raise self._stopped(name, exc) from None
        return [_tool_dict(t) for t in result.tools]

    def _stopped(self, name: str, exc: BaseException) -> McpServerError:
        """The error for a server that no longer answers; its connection is dropped."""
        conn = self._connections.get(name)
        why = _describe(exc)
        if conn is not None:
            conn.stopped = exc
            conn.closing.set()
            why = conn.last_stderr_line() or why
        return McpServerError(f"MCP server {name!r} stopped: {why}")

    async def call_tool(self, name: str, tool: str, arguments: str) -> tuple[str, str | None]:
        """Call ``tool`` on server ``name`` with the model's JSON ``arguments``.

        Returns ``(result, error)``, as ``run_tool`` does: arguments that do not
        parse and errors the tool reports go back to the model. A server that
        cannot be reached raises ``McpServerError``.
        """
        try:
            args = json.loads(arguments or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments must be a JSON object")
        except ValueError as exc:
            err = f"bad arguments for {name}{TOOL_SEPARATOR}{tool}: {exc}"
            return f"error: {err}", err
        session = await self._session(name)
        try:
            result = await session.call_tool(tool, args)
        except Exception as exc:
            code = getattr(getattr(exc, "error", None), "code", None)
            if not isinstance(code, int) or code in _TRANSPORT_CODES:
                raise self._stopped(name, exc) from None
            # The server answered with a JSON-RPC error (bad params, unknown tool).
            err = f"{name}{TOOL_SEPARATOR}{tool} failed: {_describe(exc)}"
            return f"error: {err}", err
        text = _result_text(result)
        if result.isError:
            err = text or f"{name}{TOOL_SEPARATOR}{tool} reported an error"
            return f"error: {err}", err
        return text, None

    async def aclose(self) -> None:
        """Stop every server this process started, and close every session."""
        connections, self._connections = list(self._connections.values()), {}
        for conn in connections:
            await conn.close()
