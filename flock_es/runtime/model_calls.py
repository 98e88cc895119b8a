"""One model call as the engine makes it: served from the record when it was
already paid for, otherwise made with retries and recorded at once."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from flock_es.domain.events import EventKind, ModelCalled, make_event
from flock_es.errors import ReplayMiss
from flock_es.models.base import ModelRequest, ModelResponse
from flock_es.models.retry import FailedAttempt, call_with_retries
from flock_es.redaction import redact, redact_text
from flock_es.runtime.agent import Agent
from flock_es.runtime.context import AgentContext
from flock_es.runtime.model_agent import record_attempt

if TYPE_CHECKING:
    from flock_es.runtime.engine import Engine


async def call_model(
    engine: Engine, ctx: AgentContext, agent: Agent, request: ModelRequest
) -> ModelResponse:
    """The response for call ``ctx.call_index`` of ``ctx.task_id``; a recorded one if any."""
    key = (ctx.task_id, ctx.call_index)
    ctx.call_index += 1
    rec = engine.state.calls.get(key)
    if rec is not None:
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
    if engine.record_only:
        raise ReplayMiss(f"no recorded model call {key[1]} for task {key[0]} ({agent.name})")
    client = engine.clients(agent)
    priority = int(ctx.extra.get("priority", 0))

    def slot() -> contextlib.AbstractAsyncContextManager[Any]:
        sem = engine.call_sem
        return sem.slot(priority) if sem is not None else contextlib.nullcontext()

    def failed(f: FailedAttempt) -> None:
        record_attempt(engine, ctx, agent, key[1], f)

    # Each attempt holds a slot of the global cap; backoff waits between them do not.
    limiter = getattr(client, "limiter", None)
    response, attempt = await call_with_retries(
        lambda: client.complete(request),
        engine.retry,
        failed,
        slot,
        limiter=limiter,
        what=f"model {request.model!r}",
        ready=getattr(client, "ready", None),
    )
    # What the agent sees is exactly what is recorded, so a replay matches.
    response.content = redact_text(response.content)
    response.tool_calls = redact(response.tool_calls)
    response.attempt = attempt
    engine.model_calls_made += 1
    body = ModelCalled(
        task_id=ctx.task_id,
        agent=agent.name,
        call_index=key[1],
        model=request.model,
        request=request.redacted(),
        response=response.content,
        tokens_in=response.tokens_in,
        tokens_out=response.tokens_out,
        cost=response.cost,
        latency_ms=response.latency_ms,
        tool_calls=response.tool_calls,
        attempt=attempt,
        limiter=limiter.snapshot() if limiter is not None and limiter.limited else None,
    )
    # Queued at once, so the answer is durable with the very next group commit;
    # not awaited, because waiting would only delay the agent, not the write.
    engine.record([make_event(engine.run_id, EventKind.MODEL_CALLED, body, time.time())])
    return response
