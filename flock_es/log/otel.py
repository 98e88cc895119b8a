"""OpenTelemetry export of a recorded run: ``flock-es export RUN --otlp [ENDPOINT]``.

The spans are rebuilt from the log alone, so any run can be exported after
the fact, from any database, with no user code:

- one span for the run (``flock-es run``), from ``run.started`` to ``run.finished``;
- one per task execution (``<agent>.execute``, as in Flock's traces and the
  ``spans`` view), child of the run, with GenAI ``invoke_agent`` attributes;
- one per model call (``chat <model>``), child of its task, with the GenAI
  semantic-convention attributes ``gen_ai.request.model``,
  ``gen_ai.usage.input_tokens`` / ``output_tokens`` and the cost as
  ``flock_es.cost_usd`` (the conventions define no cost attribute); failed
  attempts (``model.attempt``) become error spans beside it;
- one per tool call (``execute_tool <tool>``), child of its task.

Prompts, answers and tool arguments are not exported: only metadata. Span and
trace ids are digests of the run and task ids, so exporting twice sends the
same trace. The official ``opentelemetry-sdk`` and OTLP/HTTP exporter are an
optional extra (``pip install 'flock-es[otel]'``), imported only here.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from flock_es.domain.events import (
    Event,
    EventKind,
    ModelAttempt,
    ModelCalled,
    RunFinished,
    RunStarted,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
    ToolCalled,
    body_as,
)
from flock_es.errors import TelemetryError

__all__ = ["SpanSpec", "build_spans", "otlp_endpoint", "send_spans"]

NS = 1_000_000_000


@dataclass(slots=True)
class SpanSpec:
    """One span to send: ids are 64-bit digests, times are epoch seconds."""

    key: str
    name: str
    start: float
    end: float
    parent: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _id(text: str, bits: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[: bits // 8], "big") or 1


def _provider(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else f"flock_es.{model.split('?', 1)[0]}"


def build_spans(events: Iterable[Event]) -> list[SpanSpec]:
    """The span tree of one run's events (commit order), as plain data.

    Example::

        with LogReader(db) as log:
            spans = build_spans(log.iter_events(log.resolve_run("latest")))
    """
    builder = _Builder()
    for e in events:
        builder.add(e)
    return builder.finish()


class _Builder:
    def __init__(self) -> None:
        self.run: SpanSpec | None = None
        self.tasks: dict[str, SpanSpec] = {}
        self.out: list[SpanSpec] = []
        self.skip_until = 0
        self.last = 0.0

    def add(self, e: Event) -> None:
        self.last = max(self.last, e.ts)
        kind = e.kind
        if kind is EventKind.RUN_STARTED:
            self.started(e, body_as(e, RunStarted))
        elif (e.seq or 0) <= self.skip_until or self.run is None:
            return  # a fork's copied history belongs to its parent's trace
        elif kind is EventKind.TASK_STARTED:
            self.task_started(e, body_as(e, TaskStarted), self.run)
        elif kind is EventKind.TASK_COMPLETED:
            done = body_as(e, TaskCompleted)
            if done["task_id"] not in self.tasks:  # its own start (an inline function run)
                self.task_started(e, _start_of(done), self.run, e.ts - _took(done))
            self.task_done(e, done["task_id"], None)
        elif kind is EventKind.TASK_FAILED:
            failed = body_as(e, TaskFailed)
            error = f"{failed.get('error_type', 'Exception')}: {failed.get('error', '')}"
            self.task_done(e, failed["task_id"], error)
        elif kind is EventKind.MODEL_CALLED:
            called = body_as(e, ModelCalled)
            self.out.append(_model_span(e, called, self.tasks.get(called["task_id"])))
        elif kind is EventKind.MODEL_ATTEMPT:
            attempt = body_as(e, ModelAttempt)
            self.out.append(_attempt_span(e, attempt, self.tasks.get(attempt["task_id"])))
        elif kind is EventKind.TOOL_CALLED:
            tool = body_as(e, ToolCalled)
            self.out.append(_tool_span(e, tool, self.tasks.get(tool["task_id"])))
        elif kind is EventKind.RUN_FINISHED:
            finished = body_as(e, RunFinished)
            self.run.end = e.ts
            self.run.attributes["flock_es.status"] = str(finished.get("status", ""))
            if str(finished.get("status")) == "failed":
                self.run.error = finished.get("reason") or "failed"

    def started(self, e: Event, b: RunStarted) -> None:
        self.skip_until = (e.seq or 0) + int(b.get("inherited", 0))
        self.run = SpanSpec(f"run:{e.run_id}", "flock-es run", e.ts, e.ts)
        self.run.attributes = {
            "flock_es.run_id": e.run_id,
            "flock_es.program": b.get("program") or "",
            "gen_ai.request.model": b.get("model", ""),
        }
        parent_run = b.get("parent_run")
        if parent_run:
            self.run.attributes["flock_es.parent_run"] = parent_run
            self.run.attributes["flock_es.fork_seq"] = b.get("fork_seq") or 0
        self.out.append(self.run)

    def task_started(
        self, e: Event, b: TaskStarted, run: SpanSpec, at: float | None = None
    ) -> None:
        start = e.ts if at is None else at
        key = f"task:{b['task_id']}:{b.get('attempt', 1)}"
        span = SpanSpec(key, f"{b['agent']}.execute", start, start, run.key)
        span.attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": b["agent"],
            "flock_es.task_id": b["task_id"],
            "flock_es.attempt": b.get("attempt", 1),
        }
        self.tasks[b["task_id"]] = span
        self.out.append(span)

    def task_done(self, e: Event, task_id: str, error: str | None) -> None:
        span = self.tasks.pop(task_id, None)
        if span is None:
            return
        span.end = e.ts
        span.attributes["flock_es.status"] = "completed" if error is None else "failed"
        if error is not None:
            span.error = error

    def finish(self) -> list[SpanSpec]:
        for span in self.tasks.values():  # started, never finished: crashed or stopped
            span.end, span.attributes["flock_es.status"] = self.last, "unfinished"
        if self.run is not None and self.run.end <= self.run.start:
            self.run.end = self.last
        return self.out


def _start_of(done: TaskCompleted) -> TaskStarted:
    """The start a completion stands for (no task.started was recorded)."""
    return {"task_id": done["task_id"], "agent": done["agent"], "attempt": done.get("attempt", 1)}


def _took(done: TaskCompleted) -> float:
    return float(done.get("duration_ms", 0.0)) / 1000.0


def _child_span(key: str, name: str, e: Event, took_ms: float, task: SpanSpec | None) -> SpanSpec:
    """A span that ends at ``e`` and lasted ``took_ms``, inside its task's span if known."""
    start = e.ts - took_ms / 1000.0
    return SpanSpec(
        key,
        name,
        max(start, task.start) if task else start,
        e.ts,
        task.key if task else None,
    )


def _chat_span(
    e: Event, b: ModelCalled | ModelAttempt, model: str, task: SpanSpec | None
) -> SpanSpec:
    called = e.kind is EventKind.MODEL_CALLED
    key = f"call:{b['task_id']}:{b['call_index']}:{b.get('attempt', 1)}:{int(called)}"
    span = _child_span(key, f"chat {model}", e, float(b.get("latency_ms", 0.0)), task)
    span.attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": _provider(model),
        "gen_ai.request.model": model,
        "flock_es.task_id": b["task_id"],
        "flock_es.call_index": b["call_index"],
        "flock_es.attempt": b.get("attempt", 1),
    }
    return span


def _model_span(e: Event, b: ModelCalled, task: SpanSpec | None) -> SpanSpec:
    span = _chat_span(e, b, b.get("model") or "unknown", task)
    # None: the provider sent no usage; exported as 0, as the fold counts it.
    span.attributes["gen_ai.usage.input_tokens"] = int(b.get("tokens_in") or 0)
    span.attributes["gen_ai.usage.output_tokens"] = int(b.get("tokens_out") or 0)
    cost = b.get("cost")
    if cost is not None:
        span.attributes["flock_es.cost_usd"] = float(cost)
    return span


def _attempt_span(e: Event, b: ModelAttempt, task: SpanSpec | None) -> SpanSpec:
    # An attempt's body names no model (the call's model.called does).
    span = _chat_span(e, b, "unknown", task)
    span.attributes["error.type"] = b.get("outcome", "error")
    span.error = b.get("error") or b.get("outcome") or "attempt failed"
    return span


def _tool_span(e: Event, b: ToolCalled, task: SpanSpec | None) -> SpanSpec:
    key = f"tool:{b['task_id']}:{b['call_index']}:{b['position']}"
    took_ms = float(b.get("duration_ms", 0.0))
    span = _child_span(key, f"execute_tool {b['tool']}", e, took_ms, task)
    span.attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": b["tool"],
        "gen_ai.tool.call.id": b.get("call_id", ""),
        "flock_es.task_id": b["task_id"],
    }
    error = b.get("error")
    if error:
        span.error = str(error)
    return span


def otlp_endpoint(given: str | None) -> str:
    """The OTLP/HTTP traces URL: ``given`` (``/v1/traces`` added to a bare host),
    else ``$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, else ``$OTEL_EXPORTER_OTLP_ENDPOINT``
    plus ``/v1/traces``, else ``http://localhost:4318/v1/traces``."""
    if not given:
        given = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        if given:
            return given
        given = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318")
    if "://" not in given:
        given = f"http://{given}"
    parts = urlsplit(given)
    if not parts.scheme.startswith("http") or not parts.netloc:
        raise TelemetryError(f"--otlp {given!r} is not an http(s) URL such as http://host:4318")
    return given if parts.path.strip("/") else given.rstrip("/") + "/v1/traces"


def send_spans(run_id: str, spans: list[SpanSpec], endpoint: str, timeout: float = 10.0) -> None:
    """Send ``spans`` in one OTLP/HTTP request with the official SDK exporter."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import SpanExportResult
    except ImportError:
        raise TelemetryError(
            "--otlp needs the OpenTelemetry extra: pip install 'flock-es[otel]'"
        ) from None
    finished = _record(run_id, spans)
    exporter = OTLPSpanExporter(endpoint=endpoint, timeout=timeout)
    # The exporter logs each retry; keep them for the one-line error instead.
    log = logging.getLogger("opentelemetry.exporter.otlp")
    caught = _Remember()
    log.addHandler(caught)
    propagate, log.propagate = log.propagate, False
    try:
        result = exporter.export(finished)
    finally:
        exporter.shutdown()  # type: ignore[no-untyped-call]
        log.removeHandler(caught)
        log.propagate = propagate
    if result is not SpanExportResult.SUCCESS:
        why = f": {caught.reason()}" if caught.reason() else ""
        raise TelemetryError(f"could not send the spans of {run_id} to {endpoint}{why}")


class _Remember(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def reason(self) -> str:
        """The cause in the first message, shortened to one line."""
        for m in self.messages:
            for cause in ("Connection refused", "timed out", "Name or service not known"):
                if cause in m:
                    return cause
        first = next(iter(self.messages), "")
        return first.splitlines()[0][:200] if first else ""


def _record(run_id: str, spans: list[SpanSpec]) -> Any:
    """Turn the specs into SDK spans (our ids and times), collected in memory."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.trace import Status, StatusCode

    from flock_es import __version__

    class LogIds(IdGenerator):
        next_span = 0

        def generate_trace_id(self) -> int:
            return _id(f"trace:{run_id}", 128)

        def generate_span_id(self) -> int:
            return self.next_span

    ids = LogIds()
    memory = InMemorySpanExporter()
    service = os.environ.get("OTEL_SERVICE_NAME") or "flock-es"
    resource = Resource.create({"service.name": service, "service.version": __version__})
    provider = TracerProvider(resource=resource, id_generator=ids)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("flock_es", __version__)
    live: dict[str, Any] = {}
    for s in spans:  # parents come before their children in log order
        parent = live.get(s.parent) if s.parent else None
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        ids.next_span = _id(f"span:{run_id}:{s.key}", 64)
        span = tracer.start_span(
            s.name, context=ctx, start_time=int(s.start * NS), attributes=s.attributes
        )
        if s.error:
            span.set_status(Status(StatusCode.ERROR, s.error[:500]))
        live[s.key] = span
    for s in spans:
        live[s.key].end(end_time=int(max(s.end, s.start) * NS))
    provider.shutdown()
    return memory.get_finished_spans()
