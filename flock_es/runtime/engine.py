"""The engine: turns committed decisions into running agents, and agent results
into new events.

Every effect waits for the commit of the event it depends on: a task starts
only after its ``task.scheduled`` is durable, ``publish`` returns only after
its artifact and the schedules it caused are. The in-memory state is advanced
with the same ``apply`` as every reader, before the commit, so decisions made
in between see them (the event loop runs one decision at a time).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from flock_es.domain import ids, registry
from flock_es.domain.events import (
    ArtifactPublished,
    Event,
    EventKind,
    ScheduleReason,
    TaskFailed,
    TaskStarted,
    make_event,
    trusted_event,
)
from flock_es.domain.visibility import visible_to
from flock_es.errors import ModelError, OutputValidationError
from flock_es.log.writer import LogWriter
from flock_es.models.base import ModelClient, ModelRequest, ModelResponse
from flock_es.models.retry import RetryPolicy
from flock_es.projection.decide import (
    SubscriptionIndex,
    decide_artifact,
    decide_batch_flush,
    schedule,
)
from flock_es.projection.fold import apply
from flock_es.projection.state import RunState, TaskView
from flock_es.redaction import redact_text
from flock_es.runtime.agent import Agent
from flock_es.runtime.context import AgentContext, build_context, correlation_of
from flock_es.runtime.gate_timers import GateTimers
from flock_es.runtime.model_agent import run_model_agent
from flock_es.runtime.model_calls import call_model
from flock_es.runtime.outputs import check_output_types, normalise_outputs
from flock_es.runtime.priority import PrioritySemaphore

Listener = Callable[[list[Event]], None]


@dataclass(slots=True)
class _Started:
    """A task that has been recorded as started: what its run needs to finish."""

    ctx: AgentContext
    corr: str | None
    attempt: int
    t0: float


INVOKE_SUB = -1
UNPUBLISHED_TAG = "flock-es:unpublished"
INLINE_CHUNK = 256


class Engine:
    def __init__(
        self,
        run_id: str,
        writer: LogWriter,
        agents: dict[str, Agent],
        clients: Callable[[Agent], ModelClient],
        default_model: str,
        state: RunState | None = None,
        max_concurrent_calls: int | None = None,
        record_only: bool = False,
        retry: RetryPolicy | None = None,
        max_agent_iterations: int | None = None,
    ) -> None:
        self.run_id = run_id
        self.writer = writer
        self.agents = agents
        self.clients = clients
        self.default_model = default_model
        self.state = state if state is not None else RunState(run_id=run_id)
        self.state.run_id = run_id
        self.index = SubscriptionIndex.build(
            (s for a in agents.values() for s in a.subscriptions),
            allow_self=[a.name for a in agents.values() if a.self_trigger],
            identities=[a.identity() for a in agents.values()],
            max_iterations=max_agent_iterations,
        )
        self.objects: dict[str, BaseModel] = {}
        self.work: set[asyncio.Task[Any]] = set()
        self.timers: dict[tuple[str, int], asyncio.Task[None]] = {}
        self.listeners: list[Listener] = []
        self.agent_sems = {
            a.name: PrioritySemaphore(a.max_concurrency)
            for a in agents.values()
            if a.max_concurrency
        }
        self.call_sem = PrioritySemaphore(max_concurrent_calls) if max_concurrent_calls else None
        self.gate_timers = GateTimers(self)
        self.record_only = record_only
        self.retry = retry or RetryPolicy()
        self.model_calls_made = 0
        self.invoke_waiters: dict[str, asyncio.Future[list[BaseModel]]] = {}
        self.unpublished: set[str] = set()

    # --- commit ----------------------------------------------------------

    def _apply(self, events: list[Event]) -> None:
        for e in events:
            apply(self.state, e)

    async def _commit(self, events: list[Event]) -> None:
        await self.writer.submit(events)
        for e in events:
            if e.kind is EventKind.ARTIFACT_PUBLISHED:
                view = self.state.artifacts.get(e.body["id"])
                if view is not None:
                    view.seq = e.seq
            if e.seq is not None:
                self.state.last_seq = max(self.state.last_seq, e.seq)
        for listener in self.listeners:
            listener(events)

    def record(self, events: list[Event]) -> None:
        """Apply and queue events that nothing waits on; order with later commits is kept."""
        self._apply(events)
        self.writer.enqueue(events)

    async def emit(self, events: list[Event]) -> None:
        """Apply, commit, then act on what the events decided."""
        self._apply(events)
        await self._commit(events)
        self._act(events)

    def _act(self, events: list[Event]) -> None:
        inline: list[str] = []
        for e in events:
            if e.kind is EventKind.TASK_SCHEDULED and e.body["sub_index"] != INVOKE_SUB:
                tid = e.body["task_id"]
                if self._inline(tid):
                    inline.append(tid)
                else:
                    self.launch(tid)
            elif e.kind is EventKind.BATCH_BUFFERED and e.body.get("deadline") is not None:
                self.arm(e.body["agent"], e.body["sub_index"])
            elif e.kind is EventKind.GATE_BUFFERED and e.body.get("deadline") is not None:
                b = e.body
                self.gate_timers.arm_join(b["agent"], b["sub_index"], b["key"], b["deadline"])
            elif e.kind is EventKind.ARTIFACT_PUBLISHED and e.body["id"] in self.state.unreleased:
                self.gate_timers.arm_release(e.body["id"])
        for key, timer in list(self.timers.items()):
            if key not in self.state.batches:
                timer.cancel()
                self.timers.pop(key, None)
        if self.gate_timers.joins:
            self.gate_timers.prune()
        # In chunks, so one chunk's commit (on the writer's thread) overlaps the next one's work.
        for i in range(0, len(inline), INLINE_CHUNK):
            chunk = inline[i : i + INLINE_CHUNK]
            self._track(asyncio.create_task(self._run_inline(chunk), name="flock-es:inline"))

    # --- deciding --------------------------------------------------------

    def artifact_event(
        self,
        obj: BaseModel,
        aid: str,
        produced_by: str,
        task_id: str | None,
        correlation_id: str | None,
        tags: list[str],
        visibility: dict[str, Any] | None,
        now: float,
    ) -> Event:
        registry.register(type(obj))
        self.objects[aid] = obj
        body: ArtifactPublished = {
            "id": aid,
            "type": type(obj).__name__,
            "payload": obj.model_dump(mode="json"),
            "produced_by": produced_by,
            "task_id": task_id,
            "correlation_id": correlation_id,
            "tags": tags,
            "visibility": visibility or {"kind": "public"},
        }
        return trusted_event(self.run_id, EventKind.ARTIFACT_PUBLISHED, body, now)

    def decide(self, artifact_events: list[Event], now: float) -> list[Event]:
        """Apply each artifact event and append what it causes; returns all of them."""
        out: list[Event] = []
        for ev in artifact_events:
            apply(self.state, ev)
            out.append(ev)
            view = self.state.artifacts[ev.body["id"]]
            if UNPUBLISHED_TAG in view.tags:
                continue
            caused = decide_artifact(self.state, self.index, view, self.obj(view.id), now)
            self._apply(caused)
            out.extend(caused)
        return out

    def obj(self, aid: str) -> BaseModel:
        cached = self.objects.get(aid)
        if cached is None:
            view = self.state.artifacts[aid]
            cached = self.objects[aid] = registry.to_object(view.type, view.payload)
        return cached

    async def publish_external(
        self,
        objs: list[BaseModel],
        tags: list[str],
        correlation_id: str | None,
        visibility: dict[str, Any] | None,
    ) -> list[str]:
        now = time.time()
        evs = []
        for obj in objs:
            aid = ids.external_artifact_id()
            corr = correlation_id or aid
            evs.append(self.artifact_event(obj, aid, "external", None, corr, tags, visibility, now))
        events = self.decide(evs, now)
        await self._commit(events)
        self._act(events)
        return [e.body["id"] for e in evs]

    # --- running tasks ---------------------------------------------------

    def _track(self, task: asyncio.Task[Any]) -> None:
        self.work.add(task)
        task.add_done_callback(self.work.discard)

    def launch(self, task_id: str) -> None:
        self._track(asyncio.create_task(self._run(task_id), name=f"flock-es:{task_id}"))

    def arm(self, agent: str, sub_index: int) -> None:
        key = (agent, sub_index)
        timer = self.timers.get(key)
        if timer is not None and not timer.done():
            return
        task = asyncio.create_task(self._timer(key), name=f"flock-es:batch:{agent}")
        self.timers[key] = task
        self._track(task)

    async def _timer(self, key: tuple[str, int]) -> None:
        while True:
            buf = self.state.batches.get(key)
            if buf is None or buf.deadline is None:
                return
            delay = buf.deadline - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            events = decide_batch_flush(
                self.state, key[0], key[1], ScheduleReason.BATCH_TIMEOUT, time.time()
            )
            self.timers.pop(key, None)
            await self.emit(events)
            return

    def stop_timers(self) -> None:
        """Cancel join and release timers (a closing run records no more; resume re-arms them)."""
        self.gate_timers.stop()

    def _priority(self, task: TaskView, agent: Agent) -> int:
        if 0 <= task.sub_index < len(agent.subscriptions):
            return agent.subscriptions[task.sub_index].priority
        return 0

    async def _run(self, task_id: str) -> None:
        task = self.state.tasks[task_id]
        agent = self.agents.get(task.agent)
        if agent is None:
            missing = LookupError(f"agent {task.agent!r} is not defined in this program")
            await self.emit([self._failed(task, missing)])
            self._settle(task.id, missing)
            return
        sem = self.agent_sems.get(agent.name)
        if sem is None:
            await self._execute(task, agent)
            return
        async with sem.slot(self._priority(task, agent)):
            await self._execute(task, agent)

    def _context_ids(self, task: TaskView, agent: Agent, corr: str | None) -> list[str]:
        """Earlier artifacts of the correlation that ``agent`` may see (recorded once per task)."""
        who = agent.identity()
        if task.context is not None:
            candidates = [i for i in task.context if i in self.state.artifacts]
        elif corr is None:
            return []
        else:
            skip = set(task.inputs)
            candidates = [
                a.id
                for a in self.state.artifacts.values()
                if a.correlation_id == corr and a.id not in skip and UNPUBLISHED_TAG not in a.tags
            ]
        arts = self.state.artifacts
        return [i for i in candidates if visible_to(arts[i].visibility, who, arts[i].released)]

    def _start(self, task: TaskView, agent: Agent) -> _Started:
        """Record ``task.started`` and build what the agent sees."""
        attempt = task.attempt + 1
        corr = correlation_of(self.state, task)
        body: TaskStarted = {"task_id": task.id, "agent": agent.name, "attempt": attempt}
        context = self._context_ids(task, agent, corr) if agent.with_context else None
        if context is not None:
            body["context"] = context
        # Not awaited: the writer keeps order, so later events of this task commit after it.
        self.record([trusted_event(self.run_id, EventKind.TASK_STARTED, body, time.time())])
        ctx = build_context(self.state, task, agent, attempt, self._priority(task, agent), context)
        return _Started(ctx, corr, attempt, time.perf_counter())

    async def _outputs(self, task: TaskView, agent: Agent, ctx: AgentContext) -> list[BaseModel]:
        inputs = [self.obj(i) for i in task.inputs]
        if agent.function is not None:
            result = await agent.call_function(ctx, inputs, self._batched(task, agent))
            outputs = normalise_outputs(result)
        else:
            outputs = await self._model_outputs(ctx, agent, inputs)
        check_output_types(agent, outputs)
        return outputs

    def _completed(
        self, task: TaskView, agent: Agent, run: _Started, outputs: list[BaseModel]
    ) -> list[Event]:
        """Outputs, ``task.completed`` and what the outputs cause: one atomic unit, applied."""
        now = time.time()
        tags = [UNPUBLISHED_TAG] if task.id in self.unpublished else []
        arts = [
            self.artifact_event(
                o,
                ids.output_id(task.id, pos),
                agent.name,
                task.id,
                run.corr,
                tags,
                agent.visibility_for(type(o).__name__),
                now,
            )
            for pos, o in enumerate(outputs)
        ]
        done = trusted_event(
            self.run_id,
            EventKind.TASK_COMPLETED,
            {
                "task_id": task.id,
                "agent": agent.name,
                "outputs": [a.body["id"] for a in arts],
                "attempt": run.attempt,
                "duration_ms": (time.perf_counter() - run.t0) * 1000.0,
            },
            now,
        )
        events = self.decide(arts, now)
        apply(self.state, done)
        events.insert(len(arts), done)
        return events

    async def _execute(self, task: TaskView, agent: Agent) -> None:
        run = self._start(task, agent)
        try:
            outputs = await self._outputs(task, agent, run.ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self.emit([self._failed(task, exc, run.t0)])
            self._settle(task.id, exc)
            await self._on_error(agent, run.ctx, exc)
            return
        events = self._completed(task, agent, run, outputs)
        await self._commit(events)
        self._act(events)
        self._settle(task.id, outputs)

    def _inline(self, task_id: str) -> bool:
        """Plain ``def`` function agents never yield, so a whole batch of them runs in
        one asyncio task and commits once: the same work without a task per run."""
        task = self.state.tasks.get(task_id)
        agent = self.agents.get(task.agent) if task is not None else None
        return (
            agent is not None
            and agent.function is not None
            and not inspect.iscoroutinefunction(agent.function)
            and agent.name not in self.agent_sems
            and task_id not in self.invoke_waiters
        )

    async def _run_inline(self, task_ids: list[str]) -> None:
        events: list[Event] = []
        failures: list[tuple[Agent, AgentContext, Exception]] = []
        for tid in task_ids:
            task = self.state.tasks[tid]
            agent = self.agents[task.agent]
            run = self._start(task, agent)
            try:
                outputs = await self._outputs(task, agent, run.ctx)
            except Exception as exc:
                failed = self._failed(task, exc, run.t0)
                apply(self.state, failed)
                events.append(failed)
                failures.append((agent, run.ctx, exc))
                continue
            events.extend(self._completed(task, agent, run, outputs))
        await self._commit(events)
        self._act(events)
        for failed_agent, ctx, error in failures:
            await self._on_error(failed_agent, ctx, error)

    def _settle(self, task_id: str, result: list[BaseModel] | Exception) -> None:
        waiter = self.invoke_waiters.pop(task_id, None)
        if waiter is None or waiter.done():
            return
        if isinstance(result, Exception):
            waiter.set_exception(RuntimeError(f"agent failed: {result}"))
        else:
            waiter.set_result(result)

    def _batched(self, task: TaskView, agent: Agent) -> bool:
        if 0 <= task.sub_index < len(agent.subscriptions):
            return agent.subscriptions[task.sub_index].batch is not None
        return False

    def _failed(self, task: TaskView, exc: Exception, t0: float | None = None) -> Event:
        raw = (
            getattr(exc, "raw", None)
            if isinstance(exc, OutputValidationError | ModelError)
            else None
        )
        error = str(exc) or type(exc).__name__
        body = TaskFailed(
            task_id=task.id,
            agent=task.agent,
            error=redact_text(error),
            error_type=type(exc).__name__,
            attempt=max(task.attempt, 1),
            duration_ms=(time.perf_counter() - t0) * 1000.0 if t0 is not None else 0.0,
            raw=redact_text(raw) if raw is not None else None,
            transient=bool(getattr(exc, "transient", False)),
        )
        return make_event(self.run_id, EventKind.TASK_FAILED, body, time.time())

    async def _on_error(self, agent: Agent, ctx: AgentContext, exc: BaseException) -> None:
        try:
            await agent.handle_error(ctx, exc)
        except Exception as handler_exc:  # a broken handler must not take the run down
            ctx.extra["on_error_failed"] = repr(handler_exc)

    # --- model calls -----------------------------------------------------

    async def _model_outputs(
        self, ctx: AgentContext, agent: Agent, inputs: list[BaseModel]
    ) -> list[BaseModel]:
        return await run_model_agent(self, ctx, agent, inputs)

    async def call_model(
        self, ctx: AgentContext, agent: Agent, request: ModelRequest
    ) -> ModelResponse:
        """One model call, served from the record when this (task, index) was already paid for."""
        return await call_model(self, ctx, agent, request)

    # --- invoke & idle ---------------------------------------------------

    async def invoke(self, agent: Agent, obj: BaseModel, publish_outputs: bool) -> list[BaseModel]:
        now = time.time()
        aid = ids.external_artifact_id()
        art = self.artifact_event(obj, aid, "external", None, aid, [UNPUBLISHED_TAG], None, now)
        sched = schedule(self.state, agent.name, INVOKE_SUB, [aid], ScheduleReason.INVOKE, now)
        fut: asyncio.Future[list[BaseModel]] = asyncio.get_running_loop().create_future()
        if not publish_outputs:
            self.unpublished.add(sched.body["task_id"])
        self.invoke_waiters[sched.body["task_id"]] = fut
        await self.emit([art, sched])
        self.launch(sched.body["task_id"])
        return await fut

    async def run_until_idle(self) -> None:
        while self.work:
            done, _ = await asyncio.wait(set(self.work))
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]

    def resume_pending(self) -> int:
        """Re-launch unfinished tasks and re-arm batch, join and visibility timers; returns tasks re-launched."""
        n = 0
        for t in self.state.pending_tasks():
            self.launch(t.id)
            n += 1
        for key, buf in self.state.batches.items():
            if buf.deadline is not None:
                self.arm(*key)
        self.gate_timers.rearm()
        return n

    async def cancel_all(self) -> None:
        self.stop_timers()
        for t in list(self.work):
            t.cancel()
        if self.work:
            await asyncio.wait(set(self.work))
