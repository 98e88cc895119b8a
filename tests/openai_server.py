"""A real OpenAI-compatible HTTP server on loopback, for the litellm tests and benchmarks.

It implements ``POST /v1/chat/completions`` (tool calls included) on
127.0.0.1 with a threaded ``http.server``. By default it answers every call
with JSON that validates against the schema the request asks for (taken from
``response_format`` or from the system prompt), built by the offline model, so
any flock-es program runs against it. Tests script it per call::

    server.script(Step(status=429, headers={"Retry-After": "0.05"}), Step(content='{"x": 1}'))

A step is consumed by one request, in arrival order; with the script empty the
default answer is used. Fault switches: ``Step(body={"choices": []})`` sends
any JSON body, ``Step(status=500, echo=True)`` an error that echoes the
request's headers, and ``OpenAIServer(max_inflight=8, retry_after="1")`` a
rate limit: 429 for every request beyond 8 in flight (``rejected`` counts them). ``latency`` delays every answer. Run it as a process
for the CLI acceptance and the benchmarks::

    python -m tests.openai_server --latency 1     # prints "port N", serves until killed

SIGINT or SIGTERM stops it, and it prints what it served, rejected and held in flight.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flock_es.models.base import ModelRequest
from flock_es.models.offline import OfflineModel


@dataclass
class Step:
    """What the server does for one request."""

    status: int = 200
    content: str | None = None  # None: the default schema-valid answer
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    tool_calls: list[dict[str, Any]] | None = None  # [{"name": ..., "arguments": {...}}]
    error: str = ""
    # Fault switches: the whole JSON body to send instead of a completion
    # (``{"choices": []}``, a completion without ``usage``, ...), and an error
    # body that echoes the request's headers and URL (as careless proxies do).
    body: dict[str, Any] | None = None
    echo: bool = False


def schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a request wants its answer to follow."""
    fmt = body.get("response_format") or {}
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("json_schema", {}).get("schema")
        if isinstance(schema, dict):
            return schema
    for m in body.get("messages", []):
        text = m.get("content")
        if m.get("role") == "system" and isinstance(text, str) and "JSON schema" in text:
            start = text.find("{", text.find("JSON schema"))
            if start >= 0:
                try:
                    parsed = json.loads(text[start:])
                except json.JSONDecodeError:
                    continue
                if isinstance(parsed, dict):
                    return parsed
    return None


def default_answer(body: dict[str, Any]) -> str:
    schema = schema_of(body)
    if schema is None:
        return "OK"
    agent = "agent"
    for m in body.get("messages", []):
        text = m.get("content")
        if m.get("role") == "system" and isinstance(text, str) and "agent '" in text:
            agent = text.split("agent '", 1)[1].split("'", 1)[0]
    req = ModelRequest(model="loopback", agent=agent, output_schema=schema)
    return OfflineModel().answer(req)


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away (a run SIGKILLed mid-call, as the crash tests and
        # benchmarks do) is what a provider sees too: not worth a traceback apiece.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class OpenAIServer:
    """The server; ``start()`` returns it listening, ``url`` is its ``api_base``."""

    def __init__(
        self,
        latency: float = 0.0,
        port: int = 0,
        max_inflight: int | None = None,
        retry_after: str | None = None,
    ) -> None:
        self.latency = latency
        # Rate limit: a request beyond ``max_inflight`` concurrent ones gets a 429
        # (with ``Retry-After: retry_after`` when given); ``rejected`` counts them.
        self.max_allowed = max_inflight
        self.retry_after = retry_after
        self.rejected = 0
        self.completed = 0
        self.steps: deque[Step] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.inflight = 0
        self.max_inflight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as separate writes; with Nagle on, each
            # answer would wait ~40 ms for the client's delayed ACK.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                server._handle(self)

            def do_GET(self) -> None:
                server._send(self, 200, {"object": "list", "data": []})

        self.httpd = _Server(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> OpenAIServer:
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def script(self, *steps: Step) -> None:
        with self.lock:
            self.steps.extend(steps)

    @property
    def calls(self) -> int:
        return len(self.requests)

    # --- one request -------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send(h, 400, {"error": {"message": "body is not JSON", "type": "bad_request"}})
            return
        with self.lock:
            self.requests.append(body)
            self.headers.append({k.lower(): v for k, v in h.headers.items()})
            if self.max_allowed is not None and self.inflight >= self.max_allowed:
                self.rejected += 1
                limited = True
            else:
                limited = False
                step = self.steps.popleft() if self.steps else Step()
                self.inflight += 1
                self.max_inflight = max(self.max_inflight, self.inflight)
        if limited:
            self._rate_limited(h)
            return
        try:
            delay = step.delay or self.latency
            if delay:
                time.sleep(delay)
            message = step.error or f"scripted HTTP {step.status}"
            if step.echo:
                seen = {k: v for k, v in h.headers.items()}
                message += f" (request to {h.path} with headers {json.dumps(seen)})"
            if step.status != 200:
                err = {"message": message, "type": "scripted", "code": step.status}
                self._send(h, step.status, {"error": err}, step.headers)
                return
            payload = step.body if step.body is not None else self._completion(body, step)
            self._send(h, 200, payload, step.headers)
            with self.lock:
                self.completed += 1
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)
        finally:
            with self.lock:
                self.inflight -= 1

    def _completion(self, body: dict[str, Any], step: Step) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant"}
        finish = "stop"
        if step.tool_calls is not None:
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": f"call_{self.calls}_{i}",
                    "type": "function",
                    "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
                }
                for i, c in enumerate(step.tool_calls)
            ]
            finish = "tool_calls"
            out_chars = sum(len(json.dumps(c)) for c in step.tool_calls)
        else:
            content = step.content if step.content is not None else default_answer(body)
            message["content"] = content
            out_chars = len(content)
        prompt_chars = len(json.dumps(body.get("messages", [])))
        usage = {
            "prompt_tokens": max(1, prompt_chars // 4),
            "completion_tokens": max(1, out_chars // 4),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {
            "id": f"chatcmpl-{self.calls}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "test-model"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }

    def _rate_limited(self, h: BaseHTTPRequestHandler) -> None:
        headers = {"x-ratelimit-limit-requests": str(self.max_allowed)}
        if self.retry_after is not None:
            headers["Retry-After"] = self.retry_after
        err = {"message": "Rate limit reached: too many requests in flight", "type": "requests"}
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._send(h, 429, {"error": err}, headers)

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler,
        status: int,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-inflight", type=int, default=None, help="429 beyond N in flight")
    parser.add_argument("--retry-after", default=None, help="Retry-After value on those 429s")
    args = parser.parse_args()
    server = OpenAIServer(
        latency=args.latency,
        port=args.port,
        max_inflight=args.max_inflight,
        retry_after=args.retry_after,
    ).start()
    print(f"port {server.port}", flush=True)
    # Stopped by SIGTERM as by Ctrl-C, and by SIGINT even when started in the background
    # of a script (whose shell has the job ignore SIGINT): it prints its counts either way.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
        print(
            f"served {server.completed} completions, rejected {server.rejected} with 429, "
            f"max {server.max_inflight} in flight",
            flush=True,
        )


if __name__ == "__main__":
    main()
