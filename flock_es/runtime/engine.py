"""The engine of a live run: the kernel, the executor and the timers, wired.

The kernel applies, commits and then tells the engine (its ``Actor``) what
each committed unit decided: the engine starts the scheduled tasks through
the executor (respecting ``max_concurrency`` and priorities) and arms the
timers of batches, join windows and releases. Every effect follows a commit:
a task starts only after its ``task.scheduled`` is durable, ``publish``
returns only after its artifact and the schedules it caused are.

Function agents' tasks that become ready together run back to back, in
chunks of ``INLINE_CHUNK`` with one commit per chunk, started as their
schedules commit: each run is stepped at once, and only one that suspends
(an ``async def`` agent that awaits) gets an asyncio task and a commit of
its own. The same work without a task and a commit per run.

Example::

    engine = Engine(kernel, agents, calls)
    await engine.publish_external([Idea(text="x")], [], None, None)
    await engine.run_until_idle()
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Iterator
from typing import Any, Protocol

from pydantic import BaseModel

from flock_es.domain import ids
from flock_es.domain.events import (
    ArtifactPublished,
    BatchBuffered,
    Event,
    EventKind,
    GateBuffered,
    ScheduleReason,
    TaskScheduled,
    body_as,
)
from flock_es.errors import AgentFailed, PayloadInvalid, PayloadNotJson
from flock_es.log.ports import EventWriter
from flock_es.projection.decide import schedule
from flock_es.projection.state import PENDING_STATUSES, RunState, TaskView
from flock_es.runtime.agent import Agent
from flock_es.runtime.executor import Executor, Outcome
from flock_es.runtime.inline_runs import InlineRuns
from flock_es.runtime.kernel import UNPUBLISHED_TAG, Kernel
from flock_es.runtime.kernel_ports import Listener, Sink
from flock_es.runtime.model_calls import ModelCalls
from flock_es.runtime.orchestrator_hooks import OrchestratorHooks
from flock_es.runtime.priority import PrioritySemaphore
from flock_es.runtime.publish_stream import publish_deferred
from flock_es.runtime.timers import Timers
from flock_es.runtime.work import Work

__all__ = [
    "DECIDE_AHEAD",
    "DECIDE_CHUNK",
    "DECIDE_FIRST",
    "DEFER_AT",
    "INLINE_CHUNK",
    "INVOKE_SUB",
    "Engine",
    "Listener",
    "ShareHook",
]

INVOKE_SUB = -1
INLINE_CHUNK = 256
# Inline chunks at work or waiting for their commit, at most. Unbounded, a large
# publish ran every chunk before the writer caught up, and the events of all of
# them waited in its queue: memory grew with the run (issue 14).
INLINE_IN_FLIGHT = 4
# A publish_many of more artifacts than this commits them at once, flagged ``deferred``,
# and decides them after, ``DECIDE_CHUNK`` a unit, with at most ``DECIDE_AHEAD`` units
# whose tasks are not all done: the tasks pending at once stay bounded (issue 14: all
# 800,000 tasks of 100,000 artifacts were pending, and their events in flight, at once).
DEFER_AT = 256
DECIDE_CHUNK = 128
# The first unit decides this many, each next one twice as many up to DECIDE_CHUNK: the
# first runs wait for the first unit's commit, which a small unit makes short.
DECIDE_FIRST = 16
DECIDE_AHEAD = 4


class Engine:
    """Runs what the kernel's commits decide."""

    def __init__(self, kernel: Kernel, agents: dict[str, Agent], calls: ModelCalls) -> None:
        self.kernel = kernel
        self.agents = agents
        self.calls = calls
        self.work = Work()
        self.timers = Timers(kernel, self.work)
        self.executor = Executor(kernel, agents, calls)
        self.inline = InlineRuns(self.executor)
        self.agent_sems = {
            a.name: PrioritySemaphore(a.max_concurrency)
            for a in agents.values()
            if a.max_concurrency
        }
        self.invoke_waiters: dict[str, asyncio.Future[list[BaseModel]]] = {}
        # Whether each agent's tasks run inline (``_inline_agent``), by name.
        self.inline_agents: dict[str, bool] = {}
        self.inline_slots = asyncio.Semaphore(INLINE_IN_FLIGHT)
        self.unpublished: set[str] = set()
        # The deferred artifacts' decider: the task ids of its units not all done yet.
        self.deciding = False
        self.decided_units: deque[deque[str]] = deque()
        self.room = asyncio.Event()
        # Orchestrator components (``Flock.add_component``); None when there are none.
        self.hooks: OrchestratorHooks | None = None
        kernel.actor = self

    # --- what the kernel exposes ------------------------------------------

    @property
    def state(self) -> RunState:
        return self.kernel.state

    @property
    def writer(self) -> Sink:
        return self.kernel.sink

    @property
    def listeners(self) -> list[Listener]:
        return self.kernel.listeners

    @property
    def model_calls_made(self) -> int:
        return self.calls.made

    async def emit(self, events: list[Event]) -> None:
        await self.kernel.emit(events)

    # --- acting on commits --------------------------------------------------

    def act(self, events: list[Event]) -> None:
        """Start what a committed unit scheduled and arm the timers it asks for."""
        inline: list[str] = []
        timers = self.timers
        inline_agents, waiters = self.inline_agents, self.invoke_waiters
        unreleased = self.kernel.state.unreleased
        # Locals: an enum member read off its class costs several global reads (3.11).
        scheduled_kind, batch_kind = EventKind.TASK_SCHEDULED, EventKind.BATCH_BUFFERED
        gate_kind, published = EventKind.GATE_BUFFERED, EventKind.ARTIFACT_PUBLISHED
        for e in events:
            kind = e.kind
            if kind in _QUIET:  # a unit's outputs, completions, answers
                continue
            if kind is scheduled_kind:
                # Typed by annotation, not ``body_as``'s call: once per task.
                scheduled: TaskScheduled = e.body  # type: ignore[assignment]
                if scheduled["sub_index"] == INVOKE_SUB:
                    continue
                tid = scheduled["task_id"]
                direct = inline_agents.get(scheduled["agent"])
                if direct is None:
                    direct = self._inline_agent(scheduled["agent"])
                if direct and (not waiters or tid not in waiters):
                    inline.append(tid)
                else:
                    self.launch(tid)
            elif kind is batch_kind:
                batched = body_as(e, BatchBuffered)
                if batched.get("deadline") is not None:
                    timers.arm_batch(batched["agent"], batched["sub_index"])
            elif kind is gate_kind:
                gated = body_as(e, GateBuffered)
                deadline = gated.get("deadline")
                if deadline is not None:
                    timers.arm_join(gated["agent"], gated["sub_index"], gated["key"], deadline)
            elif kind is published and unreleased:  # most runs hold no unreleased artifact
                aid = body_as(e, ArtifactPublished)["id"]
                if aid in unreleased:
                    timers.arm_release(aid)
        timers.prune()
        if self.deciding:
            self.room.set()
        if self.hooks is not None:
            self.hooks.scheduled(self.kernel.state, events, self.work.spawn)
        if inline:  # a unit that scheduled no function agent's task (an output, say)
            self._run_inline(inline, eager=True)

    def _run_inline(self, inline: list[str], eager: bool = False) -> None:
        """Run function-agent tasks in chunks, each one's commit overlapping the next one's
        work (at most ``INLINE_IN_FLIGHT`` done and not durable); ``eager`` (acting on a
        commit): each starts at once, ahead of that commit's callers (``Kernel.submit``)."""
        tasks = self.kernel.state.tasks
        spawn = self.work.spawn_eager if eager else self.work.spawn
        for i in range(0, len(inline), INLINE_CHUNK):
            chunk = [tasks[t] for t in inline[i : i + INLINE_CHUNK]]
            spawn(self._inline_chunk(chunk), "flock-es:inline")

    async def _inline_chunk(self, chunk: list[TaskView]) -> None:
        async with self.inline_slots:
            await self.inline.execute(chunk, self.work.spawn)

    def _inline(self, task_id: str) -> bool:
        task = self.kernel.state.tasks.get(task_id)
        return (
            task is not None
            and self._inline_agent(task.agent)
            and task_id not in self.invoke_waiters
        )

    def _inline_agent(self, name: str) -> bool:
        """Whether ``name``'s tasks run inline (a function agent, no concurrency limit);
        remembered: agents do not change once a run started."""
        agent = self.agents.get(name)
        direct = agent is not None and agent.function is not None and name not in self.agent_sems
        self.inline_agents[name] = direct
        return direct

    def launch(self, task_id: str) -> None:
        self.work.spawn_ending(self._run(task_id), f"flock-es:{task_id}")

    async def _run(self, task_id: str) -> None:
        try:  # it tells the run's work when it ends (``Work.spawn_ending``)
            task = self.kernel.state.tasks[task_id]
            agent = self.agents.get(task.agent)
            sem = self.agent_sems.get(agent.name) if agent is not None else None
            unpublished = task_id in self.unpublished
            if sem is None or agent is None:
                outcome = await self.executor.execute(task, unpublished)
            else:
                async with sem.slot(self.executor.priority(task, agent)):
                    outcome = await self.executor.execute(task, unpublished)
            self._settle(task_id, outcome)
        except BaseException:
            self.work.raising()
            raise
        self.work.ended()

    def _settle(self, task_id: str, outcome: Outcome) -> None:
        waiter = self.invoke_waiters.pop(task_id, None)
        if waiter is None or waiter.done():
            return
        if isinstance(outcome, Exception):
            waiter.set_exception(AgentFailed(f"agent failed: {outcome}"))
        else:
            waiter.set_result(outcome)

    # --- what a program does ------------------------------------------------

    async def publish_external(
        self,
        objs: list[BaseModel] | Iterator[BaseModel],
        tags: list[str],
        correlation_id: str | None,
        visibility: dict[str, Any] | None,
        partition_key: str | None = None,
    ) -> list[str]:
        """Publish objects from outside the run in one unit; their ids once durable.
        An iterator (more than ``DEFER_AT`` objects) is read as its publish streams."""
        kernel = self.kernel
        now = time.time()
        may_defer = (
            (visibility or {}).get("kind") != "after"  # decided at its release
            and getattr(kernel.sink, "submit_built", None) is None  # not on a shared log
            and self.hooks is None
        )
        if not may_defer and not isinstance(objs, list):
            objs = list(objs)
        if self.hooks is not None:
            assert isinstance(objs, list)
            evs, vetoes = await self.hooks.external(
                kernel, objs, tags, correlation_id, visibility, now
            )
            await kernel.commit_decided(lambda: kernel.decide_vetoed(vetoes, evs, now))
            return [body_as(e, ArtifactPublished)["id"] for e in evs]
        defer = may_defer and (not isinstance(objs, list) or len(objs) > DEFER_AT)

        several = not isinstance(objs, list) or len(objs) > 1
        position = itertools.count()

        def event(obj: BaseModel) -> Event:
            aid = ids.external_artifact_id()
            corr = correlation_id or aid
            at = next(position)
            try:
                return kernel.artifact_event(
                    obj, aid, "external", None, corr, tags, visibility, now, partition_key, defer
                )
            except (PayloadNotJson, PayloadInvalid) as exc:  # which of 20,000 objects it was
                if not several:
                    raise
                raise type(exc)(f"object {at} (from 0) of the publish: {exc}") from None

        if defer:  # one transaction, streamed (runtime/publish_stream.py)
            aids = await publish_deferred(kernel, objs, event)
            self.decide_deferred()
            return aids
        evs = [event(obj) for obj in objs]
        await kernel.commit_decided(lambda: kernel.decide(evs, now))
        return [body_as(e, ArtifactPublished)["id"] for e in evs]

    def decide_deferred(self) -> None:
        """Decide the deferred artifacts in the background (a publish, and resume)."""
        if not self.deciding and self.kernel.state.undecided:
            self.deciding = True
            self.work.spawn(self._decide_deferred(), "flock-es:decide")

    async def _decide_deferred(self) -> None:
        """Decide the deferred artifacts, ``DECIDE_CHUNK`` a unit, while there is room.

        Each unit is queued for its commit as soon as it is decided, and the next one
        decided without waiting for it (on a log of its own): the writer commits in
        the order units were queued, and each unit's tasks start once it is durable.
        Waiting for each unit's commit first (behind the outputs of the runs before
        it) left the loop without ready tasks between units (issue 14)."""
        kernel = self.kernel
        scheduled_kind = EventKind.TASK_SCHEDULED
        shared = getattr(kernel.sink, "submit_built", None) is not None
        most = DECIDE_FIRST
        try:
            while kernel.state.undecided:
                await self._room()
                if shared:  # decided inside the commit that holds the run's lock
                    events = await kernel.commit_decided(
                        lambda n=most: kernel.decide_deferred(n, time.time())  # type: ignore[misc]
                    )
                else:
                    events = kernel.decide_deferred(most, time.time())
                    self.work.spawn(kernel.submit(events), "flock-es:decided")
                most = min(most * 2, DECIDE_CHUNK)
                # ``e.body`` for ``body_as(e, TaskScheduled)``: a call less per task.
                unit = deque([e.body["task_id"] for e in events if e.kind is scheduled_kind])
                if unit:
                    self.decided_units.append(unit)
        finally:
            self.deciding = False
            self.decided_units.clear()

    async def _room(self) -> None:
        """Wait until fewer than ``DECIDE_AHEAD`` decided units have tasks not done."""
        if self.kernel.actor is not self:  # a shared run's tasks: the workers' leases
            return
        tasks = self.kernel.state.tasks
        while True:
            # Every unit, not only the first: a unit waiting on one slow task (a long
            # model call, a retry after a 429) held back the units behind it, done or
            # not, and the whole publish waited for that one task.
            units = self.decided_units
            for head in units:
                while head:  # ``is_open``, inlined: once per task of a large publish
                    task = tasks.get(head[0])
                    if task is not None and task.status in PENDING_STATUSES:
                        break
                    head.popleft()
            if not all(units):
                self.decided_units = units = deque(u for u in units if u)
            if len(units) < DECIDE_AHEAD:
                return
            self.room.clear()
            await self.room.wait()

    async def invoke(self, agent: Agent, obj: BaseModel, publish_outputs: bool) -> list[BaseModel]:
        """Run ``agent`` once on ``obj`` (recorded, not offered to others); its outputs."""
        kernel = self.kernel
        now = time.time()
        aid = ids.external_artifact_id()
        art = kernel.artifact_event(obj, aid, "external", None, aid, [UNPUBLISHED_TAG], None, now)
        sched = schedule(kernel.state, agent.name, INVOKE_SUB, [aid], ScheduleReason.INVOKE, now)
        fut: asyncio.Future[list[BaseModel]] = asyncio.get_running_loop().create_future()
        task_id = body_as(sched, TaskScheduled)["task_id"]
        if not publish_outputs:
            self.unpublished.add(task_id)
        self.invoke_waiters[task_id] = fut
        await kernel.emit([art, sched])
        self.launch(task_id)
        return await fut

    async def run_until_idle(self, timeout: float | None = None) -> bool:
        """Wait until no task or timer is left; False if ``timeout`` s passed first."""
        return await self.work.until_idle(timeout)

    def resume_pending(self) -> int:
        """Re-launch unfinished tasks and re-arm batch, join and visibility timers (a
        fork's inherited ones relative to its fork point); the tasks re-launched."""
        inline: list[str] = []
        pending = self.kernel.state.pending_tasks()
        for t in pending:
            if self._inline(t.id):
                inline.append(t.id)  # as a live run does: no asyncio task per function run
            else:
                self.launch(t.id)
        self._run_inline(inline)
        self.timers.rearm()
        self.decide_deferred()
        return len(pending)

    def stop_timers(self) -> None:
        """Cancel join and release timers (a closing run records no more; resume re-arms them)."""
        self.timers.stop()

    async def cancel_all(self) -> None:
        self.timers.stop()
        await self.work.cancel_all()


# Kinds ``act`` does nothing for (an artifact only while some are unreleased).
_QUIET = frozenset(EventKind(k) for k in ("model.called", "task.completed", "task.started"))


class ShareHook(Protocol):
    """How a run joins a shared log (``runtime.sharing.ShareRun``): the sink its
    events go through, and the engine it then serves. ``execute`` is False when this
    process only publishes and waits (``--no-execute``): its model calls are made by
    workers."""

    execute: bool

    async def open_sink(self) -> EventWriter: ...

    def bind(self, engine: Engine) -> None: ...

    def resume_pending(self, engine: Engine) -> int: ...
