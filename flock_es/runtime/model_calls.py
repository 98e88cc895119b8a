"""Model and tool calls as a task makes them: served from the record when they
were already paid for, otherwise made (with retries) and recorded at once.

A recorded call is keyed (task id, call index). Before a recorded answer is
served, the request the program makes *now* is compared with the recorded one
(when the recorded requests are known: resume and replay): an answer to a
different prompt must never be passed off as the answer to this one, so a
changed request raises ``RecordedCallChanged`` instead. Where only records may
be served (replay), a call the live run made in vain (a 400, 401, 404 from the
provider: its last ``model.attempt``, not retried) fails again with the error it
recorded, as the live call did, and no model is asked.

Example::

    calls = ModelCalls(state, kernel, clients, "offline")
    response = await calls.call(task_run, request)
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

from flock_es.domain.events import (
    Event,
    EventKind,
    ModelAttempt,
    ModelCalled,
    ToolCalled,
    make_event,
    trusted_event,
)
from flock_es.domain.json_values import storable
from flock_es.errors import RecordedCallChanged, ReplayMiss, TaskEndedElsewhere
from flock_es.log.event_rows import dumps
from flock_es.log.salvaged_answers import SalvagedAnswers
from flock_es.models.base import ModelClient, ModelRequest, ModelResponse
from flock_es.models.retry import FailedAttempt, RetryPolicy, call_with_retries, recorded_failure
from flock_es.models.tools import run_tool
from flock_es.projection.state import CallView, RunState, is_open
from flock_es.redaction import redact, redact_text
from flock_es.runtime.agent import Agent
from flock_es.runtime.context import TaskRun
from flock_es.runtime.kernel_ports import Recorder
from flock_es.runtime.mcp import mcp_server_of
from flock_es.runtime.priority import PrioritySemaphore

__all__ = ["CHECKED_PARTS", "ModelCalls", "request_change"]

CallKey = tuple[str, int]
# The parts of a request that decide the answer; the model name and settings may change.
CHECKED_PARTS = ("messages", "output_schema", "tools")


def _canonical(request: ModelRequest) -> dict[str, Any]:
    canonical: dict[str, Any] = json.loads(dumps(request.redacted()))
    return canonical


def request_change(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(part, detail)`` of the first difference between two recorded requests, or None."""
    for part in CHECKED_PARTS:
        old, new = recorded.get(part), now.get(part)
        if part == "tools" and not old and not new:
            continue
        if old == new:
            continue
        if part == "messages" and isinstance(old, list) and isinstance(new, list):
            for i in range(max(len(old), len(new))):
                a = old[i] if i < len(old) else None
                b = new[i] if i < len(new) else None
                if a != b:
                    role = (a or b or {}).get("role", "")
                    return part, f"{role} message {i} of the prompt".strip()
        return part, {"output_schema": "output schema", "tools": "tool list"}.get(part, part)
    return None


def _served(rec: CallView) -> ModelResponse:
    """A recorded answer, as the agent saw it when it was paid for."""
    return ModelResponse(
        content=rec.response,
        tokens_in=rec.tokens_in,
        tokens_out=rec.tokens_out,
        cost=rec.cost,
        latency_ms=rec.latency_ms,
        tool_calls=rec.tool_calls,
        attempt=rec.attempt,
        recorded=True,
    )


class ModelCalls:
    """Every model and tool call of one run goes through here."""

    def __init__(
        self,
        state: RunState,
        recorder: Recorder,
        clients: Callable[[Agent], ModelClient],
        default_model: str,
        retry: RetryPolicy | None = None,
        max_concurrent: int | None = None,
        record_only: bool = False,
        requests: Mapping[CallKey, Mapping[str, Any]] | None = None,
        salvaged: SalvagedAnswers | None = None,
        failures: Mapping[CallKey, Mapping[str, Any]] | None = None,
    ) -> None:
        self.state = state
        self.recorder = recorder
        self.clients = clients
        self.default_model = default_model
        self.retry = retry or RetryPolicy()
        self.sem = PrioritySemaphore(max_concurrent) if max_concurrent else None
        # Never call a model: serve records or raise ``ReplayMiss`` (replay, pre-flight).
        self.record_only = record_only
        # Recorded requests by (task, call index): served answers must match them.
        self.requests = requests
        # Answers and tool results ``flock-es salvage`` read after a damaged run's cut
        # (a resume of it).
        self.salvaged = salvaged
        # The last failed attempts of calls that got no answer (``model.attempt`` bodies,
        # not retried) by (task, call index): raised again where only records are served.
        self.failures = failures
        self.made = 0
        self.served = 0

    def _recorded(self, run: TaskRun, index: int, request: ModelRequest) -> CallView | None:
        rec = self.state.calls.get((run.task.id, index))
        if rec is None:
            return None
        recorded = self.requests.get((run.task.id, index)) if self.requests is not None else None
        if recorded is not None:
            now = _canonical(request)
            change = request_change(recorded, now)
            if change is not None:
                part, detail = change
                raise RecordedCallChanged(
                    run.task.id,
                    run.agent.name,
                    index,
                    part,
                    recorded.get(part),
                    now.get(part),
                    detail,
                )
        return rec

    async def call(self, run: TaskRun, request: ModelRequest) -> ModelResponse:
        """The response to the task's next call; a recorded one if it was paid for."""
        index = run.calls  # ``run.next_call()``, spelled out: once per call
        run.calls = index + 1
        # A recorded answer is checked (``_recorded``) only if there is one (resume, replay).
        if (run.task.id, index) in self.state.calls:
            rec = self._recorded(run, index, request)
            if rec is not None:
                self.served += 1
                return _served(rec)
        # The request as recorded, made before the call, not after its answer: while
        # the answers of many calls started together arrive, the loop's work per
        # answer is what makes the last one wait (issue 14 (e)).
        recorded = request.redacted()
        kept = self._salvaged(run, index, request) if self.salvaged is not None else None
        if kept is not None:
            response, snapshot = kept, None
        else:  # inline, not a coroutine of its own: once per model call
            agent = run.agent
            if self.record_only:
                refused = self.failures.get((run.task.id, index)) if self.failures else None
                if refused is not None:  # the call was made in vain: it fails as it did
                    raise recorded_failure(
                        str(refused["outcome"]),
                        str(refused["error"]),
                        refused.get("status"),
                        int(refused.get("attempt", 1)),
                    )
                raise ReplayMiss(
                    f"no recorded model call {index} for task {run.task.id} ({agent.name})"
                )
            client = self.clients(agent)
            # A slot of the global cap per attempt, if there is a cap (none: no slot to enter).
            slot = None if self.sem is None else functools.partial(self.sem.slot, run.priority)

            def failed(f: FailedAttempt) -> None:
                self.attempt_failed(run, index, f)

            # Each attempt holds a slot of the global cap; backoff waits between them do not.
            limiter = getattr(client, "limiter", None)
            t0 = time.perf_counter()
            answering = 0.0  # the answering attempt's seconds: the model's work
            try:
                response, attempt = await call_with_retries(
                    lambda: self._complete(client, request, run.task.id),
                    self.retry,
                    failed,
                    slot,
                    limiter=limiter,
                    what=f"model {request.model!r}",
                    ready=getattr(client, "ready", None),
                    priority=run.priority,
                )
                answering = response.latency_ms / 1000.0
                run.answered += answering
            finally:
                # The rest of the call's time (given up on or not) was waiting: queued for a
                # slot (the limiter's, the global cap's), turned away (a 429 is a queue at the
                # provider) or failed, and backing off between attempts.
                run.waited += max(time.perf_counter() - t0 - answering, 0.0)
            # What the agent sees is exactly what is recorded, so a replay matches. Each
            # field is set only if it changed: a pydantic model's setattr is a Python call.
            content = redact_text(response.content)
            if content is not response.content:
                response.content = content
            if response.tool_calls:
                response.tool_calls = redact(response.tool_calls)
            if response.attempt != attempt:
                response.attempt = attempt
            self.made += 1
            snapshot = limiter.snapshot() if limiter is not None and limiter.limited else None
        event = self._answer_event(run, index, request.model, recorded, response, snapshot)
        held = run.paid
        if response.tool_calls:
            # The tools it asks for run next and may act on the world: the paid answer
            # must be durable first, or a crash in between re-pays the call on resume
            # and runs the tools twice.
            self.flush_paid(run)  # earlier answers this run holds, ahead of it
            await self.recorder.emit([event])
        elif held is not None:
            # Nothing can suspend between this answer and the task's outcome unit
            # (``Executor.execute``): applied now, committed in that unit, ahead of the
            # outputs it leads to. The unit is queued in the same loop step the answer
            # arrived in, so it is durable with the same group commit it would have
            # gone in alone (units are held until the loop's step ends), and nothing
            # acts on it before then; one unit less per answer to queue (issue 14 (e)).
            self.recorder.apply([event])
            held.append(event)
        else:
            # Queued at once, so the answer is durable with the very next group commit;
            # not awaited: the outputs it leads to commit after it (same writer, in
            # order), so nothing acts on it before it is durable, and waiting would
            # only delay the agent, not the write.
            self.recorder.record([event])
        return response

    def _salvaged(self, run: TaskRun, index: int, request: ModelRequest) -> ModelResponse | None:
        """An answer ``flock-es salvage`` kept for this call, if the request is the one
        it answered (``salvaged_answers``); recorded then like an answer made now."""
        body = self.salvaged.pop((run.task.id, index)) if self.salvaged is not None else None
        if body is None:
            return None
        if request_change(body["request"], _canonical(request)) is not None:
            return None  # another request now: the kept answer does not apply
        self.served += 1
        return ModelResponse(
            content=body["response"],
            tokens_in=body.get("tokens_in", 0),
            tokens_out=body.get("tokens_out", 0),
            cost=body.get("cost"),
            latency_ms=body.get("latency_ms", 0.0),
            tool_calls=body.get("tool_calls", []),
            attempt=body.get("attempt", 1),
        )

    def _salvaged_tool(self, key: tuple[str, int, int], call: dict[str, Any]) -> ToolCalled | None:
        """The ``tool.called`` body ``flock-es salvage`` kept for this tool call, if the
        call is the one it answered (same tool, same arguments as recorded)."""
        kept = self.salvaged.pop_tool(key) if self.salvaged is not None else None
        if kept is None:
            return None
        body = cast(ToolCalled, kept)  # a tool.called body, as the log recorded it
        same = body.get("tool") == str(call["name"]) and body.get("arguments") == redact_text(
            str(call["arguments"])
        )
        if not same:
            return None  # another call now: the kept result does not apply
        return body

    def flush_paid(self, run: TaskRun) -> None:
        """Queue the answers ``run`` holds, before it suspends (another call follows)."""
        if run.paid:
            self.recorder.queue(self.take_paid(run))

    @staticmethod
    def take_paid(run: TaskRun) -> list[Event]:
        """The answers ``run`` holds (applied, not queued), handed over: it holds none after."""
        paid = run.paid
        if not paid:
            return []
        run.paid = []
        return paid

    def _complete(self, client: Any, request: ModelRequest, task_id: str) -> Any:
        """``client.complete(request)``, unless another process ended the task: on a shared
        run, a worker that stalled past its lease (its tasks taken over and ended
        elsewhere, as its catch-up shows) paid again for each attempt still queued for a
        slot or backing off after a 429."""
        if not is_open(self.state.tasks.get(task_id)):
            raise TaskEndedElsewhere(f"task {task_id} was ended by another process")
        return client.complete(request)

    def _answer_event(
        self,
        run: TaskRun,
        index: int,
        model: str,
        request: dict[str, Any],
        response: ModelResponse,
        limiter: dict[str, Any] | None,
    ) -> Event:
        """The paid answer to ``request`` (as recorded) as a ``model.called`` event."""
        body = ModelCalled(
            task_id=run.task.id,
            agent=run.agent.name,
            call_index=index,
            model=model,
            request=request,
            response=response.content,
            tokens_in=response.tokens_in,
            tokens_out=response.tokens_out,
            cost=response.cost,
            latency_ms=response.latency_ms,
            tool_calls=response.tool_calls,
            attempt=response.attempt,
            limiter=limiter,
        )
        # Built here, typed (mypy): not validated again on the answer's path.
        return trusted_event(self.state.run_id, EventKind.MODEL_CALLED, body, time.time())

    def attempt_failed(self, run: TaskRun, index: int, failed: FailedAttempt) -> None:
        """Record a model-call attempt that gave no usable answer (``model.attempt``)."""
        if self.record_only:
            return
        body = ModelAttempt(
            task_id=run.task.id,
            agent=run.agent.name,
            call_index=index,
            attempt=failed.attempt,
            outcome=failed.outcome,
            error=redact_text(storable(failed.error)),
            status=failed.status,
            will_retry=failed.will_retry,
            retry_in=failed.retry_in,
            latency_ms=failed.latency_ms,
            limiter=failed.limiter,
        )
        self.recorder.record(
            [make_event(self.state.run_id, EventKind.MODEL_ATTEMPT, body, time.time())]
        )

    async def tool(self, run: TaskRun, index: int, position: int, call: dict[str, Any]) -> str:
        """Run a tool the model asked for, or serve its recorded result (resume, replay).

        Keyed (task id, model call index, position). The result is durable before
        the model hears it, so a tool with side effects never runs twice for one call.
        """
        key = (run.task.id, index, position)
        rec = self.state.tool_calls.get(key)
        if rec is not None:
            return rec.result
        if self.record_only:
            raise ReplayMiss(f"no recorded tool call {index}.{position} for task {key[0]}")
        kept = self._salvaged_tool(key, call) if self.salvaged is not None else None
        if kept is not None:
            # It ran before the salvage: recorded now, durable before the model hears it.
            await self.recorder.emit(
                [make_event(self.state.run_id, EventKind.TOOL_CALLED, kept, time.time())]
            )
            return str(kept["result"])
        t0 = time.perf_counter()
        mcp = mcp_server_of(run.agent, str(call["name"]))
        if mcp is not None and run.agent.mcp is not None:
            server: str | None = mcp[0]
            result, error = await run.agent.mcp.call_tool(*mcp, str(call["arguments"]))
            took = time.perf_counter() - t0
        else:
            server = None
            result, error, took = await run_tool(
                run.agent.tools, str(call["name"]), str(call["arguments"])
            )
        # ``storable``: a tool that lists files may return a name that is not UTF-8; the
        # model hears what is recorded, its lone surrogates escaped.
        result = redact_text(storable(result))
        run.answered += took  # a tool's run is the agent's work
        body = ToolCalled(
            task_id=run.task.id,
            agent=run.agent.name,
            call_index=index,
            position=position,
            call_id=str(call.get("id", "")),
            tool=str(call["name"]),
            arguments=redact_text(storable(str(call["arguments"]))),
            result=result,
            error=redact_text(storable(error)) if error else None,
            duration_ms=took * 1000.0,
        )
        if server is not None:
            body["server"] = server
        # Awaited: the result must be durable before the model hears it.
        await self.recorder.emit(
            [make_event(self.state.run_id, EventKind.TOOL_CALLED, body, time.time())]
        )
        return result
