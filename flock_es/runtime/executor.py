"""The executor: start a task, compute its outputs, complete or fail it.

One executor serves the live run, resume and replay. Live and resumed runs
use all of it through a kernel that commits to the log; replay uses
``prepare`` and ``outputs`` only, with a kernel whose sink records nothing and
model calls that serve the record, and compares what comes out with the log.

Example::

    executor = Executor(kernel, agents, calls)
    result = await executor.execute(state.tasks[task_id])
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import time
from collections.abc import Callable, Coroutine
from typing import Any

from pydantic import BaseModel

from flock_es.domain import ids
from flock_es.domain.events import (
    Event,
    EventKind,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
    make_event,
    trusted_event,
)
from flock_es.domain.json_values import storable
from flock_es.domain.registry import type_name
from flock_es.domain.visibility import visible_to
from flock_es.errors import (
    CommitFailed,
    McpServerError,
    ModelError,
    OutputValidationError,
    RecordedCallChanged,
)
from flock_es.projection.fold import apply
from flock_es.projection.state import TaskView
from flock_es.redaction import redact_text
from flock_es.runtime import agent_hooks
from flock_es.runtime.agent import Agent
from flock_es.runtime.board_queries import BoardSource
from flock_es.runtime.context import TaskRun, correlation_of
from flock_es.runtime.eval_types import artifact_for
from flock_es.runtime.kernel import UNPUBLISHED_TAG, Kernel
from flock_es.runtime.model_agent import run_model_agent
from flock_es.runtime.model_calls import ModelCalls
from flock_es.runtime.orchestrator_hooks import Candidate, OrchestratorHooks
from flock_es.runtime.outputs import check_output_types, normalise_outputs
from flock_es.runtime.store import Artifact

__all__ = ["FATAL", "WAITED_FLOOR", "Executor", "Outcome", "Spawn"]

Outcome = list[BaseModel] | Exception
# How the executor hands work to the run's tracked tasks (``Work.spawn``).
Spawn = Callable[[Coroutine[Any, Any, Any], str, contextvars.Context], Any]
# Errors that stop the run instead of failing one task.
# An MCP server that cannot be reached is the environment, not the agent: the run
# stops resumable, and the CLI says which server.
FATAL = (asyncio.CancelledError, RecordedCallChanged, CommitFailed, McpServerError)
# Globals: in Python 3.11 an enum member read off its class costs about 3 global reads.
_STARTED, _COMPLETED = EventKind.TASK_STARTED, EventKind.TASK_COMPLETED

WAITED_FLOOR = 0.001
"""Seconds of waiting (``TaskRun.waited``) an outcome records as ``waited_ms``; less is
the call path's own microseconds (every offline call has some), not a queue."""


class Executor:
    """Runs tasks of one run's agents through a kernel and a model-call policy."""

    def __init__(self, kernel: Kernel, agents: dict[str, Agent], calls: ModelCalls) -> None:
        self.kernel = kernel
        self.agents = agents
        self.calls = calls
        # (task id, repr) of ``on_error`` handlers that raised (they must not stop the run).
        self.handler_failures: list[tuple[str, str]] = []
        # The worker (host:pid:n) recorded in task.started under `flock-es worker`.
        self.worker: str | None = None
        # The program's orchestrator components (``Flock.add_component``), if any.
        self.orchestrator: OrchestratorHooks | None = None

    @property
    def board(self) -> BoardSource | None:
        """The run's database, for ``ctx.store`` and the artifacts the state let go of."""
        return self.kernel.artifacts.board

    @board.setter
    def board(self, board: BoardSource | None) -> None:
        self.kernel.artifacts.board = board

    # --- pieces shared with replay -----------------------------------------

    @staticmethod
    def priority(task: TaskView, agent: Agent) -> int:
        if 0 <= task.sub_index < len(agent.subscriptions):
            return agent.subscriptions[task.sub_index].priority
        return 0

    @staticmethod
    def batched(task: TaskView, agent: Agent) -> bool:
        if 0 <= task.sub_index < len(agent.subscriptions):
            return agent.subscriptions[task.sub_index].batch is not None
        return False

    def prepare(
        self, task: TaskView, agent: Agent, attempt: int, context_ids: list[str] | None
    ) -> TaskRun:
        """What one execution of ``task`` needs; records nothing (replay calls this)."""
        subs = agent.subscriptions  # ``priority``, spelled out: once per task run
        priority = subs[task.sub_index].priority if 0 <= task.sub_index < len(subs) else 0
        return TaskRun(
            task,
            agent,
            self.kernel.state,
            attempt,
            priority,
            time.perf_counter(),
            context_ids,
            self.board,
        )

    async def outputs(self, run: TaskRun) -> list[BaseModel]:
        """Run the agent on the task's inputs; its outputs, checked against ``.publishes()``."""
        agent = run.agent
        if agent.utilities or agent.engines:
            batched = self.batched(run.task, agent)
            outputs = await agent_hooks.evaluate(
                self.kernel, self.calls, run, batched, lambda objs: self._builtin(run, objs)
            )
        elif agent.function is None:  # ``_builtin``'s model branch, a coroutine frame less
            inputs = [self.kernel.obj(i) for i in run.task.inputs]
            outputs = await run_model_agent(self.calls, run, inputs)
        else:
            outputs = await self._builtin(run, [self.kernel.obj(i) for i in run.task.inputs])
        hooks = self.orchestrator
        if hooks is not None and hooks.transforms:
            arts = [self._artifact(run, pos, o) for pos, o in enumerate(outputs)]
            outputs, run.blocked = await hooks.outputs(outputs, arts)
        check_output_types(agent, outputs)
        return outputs

    async def _builtin(self, run: TaskRun, inputs: list[BaseModel]) -> list[BaseModel]:
        """The agent's own evaluation: its function, else its model."""
        agent = run.agent
        if agent.function is not None:
            result = await agent.call_function(run, inputs, self.batched(run.task, agent))
            return normalise_outputs(result)
        return await run_model_agent(self.calls, run, inputs)

    def _artifact(self, run: TaskRun, pos: int, obj: BaseModel) -> Artifact:
        """Output ``pos`` of ``run`` as it will be recorded (for orchestrator components)."""
        art = artifact_for(obj, run.agent.name)
        oid = ids.output_id(run.task.id, pos)
        return dataclasses.replace(art, id=oid, correlation_id=run.correlation_id)

    async def _vetoes(
        self, run: TaskRun, outputs: list[BaseModel], unpublished: bool
    ) -> list[Event]:
        """What orchestrator components refuse of these outputs (``schedule.vetoed``)."""
        hooks = self.orchestrator
        if hooks is None or unpublished:
            return []
        items: list[Candidate] = [
            (
                self._artifact(run, pos, o),
                self._visibility(run, o),
                o,
                pos in run.blocked,
            )
            for pos, o in enumerate(outputs)
        ]
        return await hooks.vetoes(self.kernel.run_id, self.kernel.index, items, time.time())

    @staticmethod
    def _visibility(run: TaskRun, obj: BaseModel) -> dict[str, Any]:
        return run.agent.visibility_for(type_name(type(obj))) or {"kind": "public"}

    # --- the live cycle ----------------------------------------------------

    def _context_ids(self, task: TaskView, agent: Agent) -> list[str]:
        """Earlier artifacts of the correlation that ``agent`` may see (recorded once per task)."""
        state = self.kernel.state
        arts = self.kernel.artifacts  # the state's views, else the log's
        if task.context is not None:
            candidates = [v for i in task.context if (v := arts.get(i)) is not None]
        else:
            corr = correlation_of(state, task)
            if corr is None:
                return []
            skip = set(task.inputs)
            candidates = [
                a
                for a in arts.of_correlation(corr)
                if a.id not in skip and UNPUBLISHED_TAG not in a.tags
            ]
        who = agent.identity()
        return [a.id for a in candidates if visible_to(a.visibility, who, a.released)]

    def _started_event(self, task: TaskView, agent: Agent) -> tuple[Event, list[str] | None]:
        """``task.started`` of the next attempt of ``task`` (not applied), and its context ids."""
        body: TaskStarted = {"task_id": task.id, "agent": agent.name, "attempt": task.attempt + 1}
        context = self._context_ids(task, agent) if agent.with_context else None
        if context is not None:
            body["context"] = context
        if self.worker is not None:
            body["worker"] = self.worker
        return trusted_event(self.kernel.run_id, _STARTED, body, time.time()), context

    def start(self, task: TaskView, agent: Agent, unit: list[Event] | None = None) -> TaskRun:
        """Record ``task.started`` and build what the agent sees.

        With ``unit``, the event is applied and added to it (the caller commits the
        unit) instead of being queued on its own.
        """
        attempt = task.attempt + 1  # before the event is applied
        event, context = self._started_event(task, agent)
        kernel = self.kernel
        if unit is None:
            # Not awaited: the writer keeps order, so later events of this task commit after it.
            kernel.record([event])
        else:
            kernel.apply([event])
            unit.append(event)
        return self.prepare(task, agent, attempt, context)

    def start_held(self, task: TaskView, agent: Agent, unit: list[Event]) -> TaskRun:
        """``start`` for an inline run (``inline_runs``): its ``task.started`` is held back.

        A run that completes on its first step records no ``task.started`` at all:
        its ``task.completed`` (attempt, duration) says when it started, in the same
        unit, and the fold starts it there. One that suspends or fails gets its
        ``task.started`` (``held_start``) as before, stamped with the time it
        started. A start that carries more than the attempt (context ids, a worker,
        orchestrator components watching) is recorded as before.
        """
        if agent.with_context or self.worker is not None or self.orchestrator is not None:
            return self.start(task, agent, unit)
        run = self.prepare(task, agent, task.attempt + 1, None)
        run.held_start = True
        return run

    def held_start(self, run: TaskRun) -> list[Event]:
        """The held ``task.started`` of ``run``, applied now (empty if none is held).

        Built only now (most runs never need it), at the time the run started."""
        if not run.held_start:
            return []
        run.held_start = False
        event, _ = self._started_event(run.task, run.agent)
        event.ts -= time.perf_counter() - run.t0
        self.kernel.apply([event])
        return [event]

    def completion(
        self,
        run: TaskRun,
        outputs: list[BaseModel],
        unpublished: bool,
        vetoes: list[Event] | None = None,
    ) -> list[Event]:
        """Outputs, ``task.completed`` and what the outputs cause: one atomic unit, applied.

        ``vetoes`` (``schedule.vetoed``) go first, so deciding the outputs skips them.
        """
        kernel, task, agent = self.kernel, run.task, run.agent
        now = time.time()
        tags = [UNPUBLISHED_TAG] if unpublished else []
        # ``run.correlation_id`` without its property's call (once per run).
        built = run.built
        corr = built.correlation_id if built is not None else correlation_of(kernel.state, task)
        tid, name = task.id, agent.name
        arts: list[Event] = []
        oids: list[str] = []
        # One run deeper than its task (recorded only where the run has a ``max_depth``).
        depth = task.depth + 1 if kernel.state.max_depth is not None else 0
        for pos, o in enumerate(outputs):  # most runs: one output
            oid = ids.output_id(tid, pos)
            oids.append(oid)
            tname = type_name(type(o))
            vis = agent.type_visibility.get(tname, agent.output_visibility)  # visibility_for
            # Positional (no partition key, not deferred): a call by keywords matches names.
            event = kernel.artifact_event(
                o, oid, name, tid, corr, tags, vis, now, None, False, tname, depth
            )
            arts.append(event)
        # The vetoes once every output is made: an output the log cannot hold
        # (``PayloadNotJson``) fails the task with nothing of this unit applied.
        if vetoes:
            for v in vetoes:
                v.ts = now  # one unit, one timestamp (replay and fork find units by it)
            kernel.apply(vetoes)
        duration = time.perf_counter() - run.t0
        body: TaskCompleted = {
            "task_id": tid,
            "agent": name,
            "outputs": oids,
            "attempt": run.attempt,
            "duration_ms": duration * 1000.0,
        }
        # ``self.waited``, without its call for a function agent (once per run).
        waited = run.waited if agent.function is not None else self.waited(run, duration)
        if waited >= WAITED_FLOOR:
            body["waited_ms"] = waited * 1000.0
        done = trusted_event(kernel.run_id, _COMPLETED, body, now)
        events = kernel.decide(arts, now)
        apply(kernel.state, done)  # ``kernel.apply``: ``decide`` just checked the kernel
        events.insert(len(arts), done)
        if vetoes:
            events = [*vetoes, *events]
        if run.paid:  # the answers the outputs come from, first (applied first)
            events = [*ModelCalls.take_paid(run), *events]
        return events

    @staticmethod
    def waited(run: TaskRun, duration: float) -> float:
        """The seconds of ``run``'s ``duration`` that were not its agent's work
        (``waited_ms`` of its outcome; the summary's busy time leaves them out).

        A function agent's work is its whole run less what its model calls waited
        (``TaskRun.waited``). A model agent's (no engine of its own) is its model's
        answering and its tools' running (``TaskRun.answered``): the rest is
        waiting, for a slot, between attempts, or for the event loop, which runs
        every task in turn. 600 offline model agents started together each spent
        most of a 0.35 s run waiting for the loop, and the summary said
        ``agents busy 115.16 s · parallel speedup 330.7×`` on two cores.
        """
        agent = run.agent
        if agent.function is not None or agent.engines:
            return run.waited
        return max(run.waited, duration - run.answered)

    def failure(
        self, task: TaskView, exc: Exception, t0: float | None = None, waited: float = 0.0
    ) -> Event:
        """The ``task.failed`` event for ``exc`` (not applied); ``waited``: seconds its
        model calls waited (``TaskRun.waited``)."""
        raw = (
            getattr(exc, "raw", None)
            if isinstance(exc, OutputValidationError | ModelError)
            else None
        )
        # ``storable``: a message may quote a file name that is not UTF-8 (``\\udce9``).
        error = storable(str(exc) or type(exc).__name__)
        body = TaskFailed(
            task_id=task.id,
            agent=task.agent,
            error=redact_text(error),
            error_type=type(exc).__name__,
            attempt=max(task.attempt, 1),
            duration_ms=(time.perf_counter() - t0) * 1000.0 if t0 is not None else 0.0,
            raw=redact_text(storable(raw)) if raw is not None else None,
            transient=bool(getattr(exc, "transient", False)),
        )
        if waited >= WAITED_FLOOR:
            body["waited_ms"] = waited * 1000.0
        return make_event(self.kernel.run_id, EventKind.TASK_FAILED, body, time.time())

    def failed_unit(self, run: TaskRun, exc: Exception) -> list[Event]:
        """``task.failed`` of ``run`` after its held start, if any (attempts count), applied."""
        # Held answers first: they were applied when they arrived (an inline run, whose
        # start may be held, holds no answers).
        paid = ModelCalls.take_paid(run)
        started = self.held_start(run)
        waited = self.waited(run, time.perf_counter() - run.t0)
        failed = self.failure(run.task, exc, run.t0, waited)
        self.kernel.apply([failed])
        return [*paid, *started, failed]

    async def on_error(self, run: TaskRun, exc: BaseException) -> None:
        try:
            await run.agent.handle_error(run.ctx, exc)
        except Exception as handler_exc:  # a broken handler must not take the run down
            self.handler_failures.append((run.task.id, repr(handler_exc)))

    async def settled(self, run: TaskRun, unpublished: bool) -> tuple[list[Event], Outcome]:
        """Run the agent; the events of its outcome (applied, not committed) and the outcome."""
        try:
            outputs = await self.outputs(run)
            vetoes = await self._vetoes(run, outputs, unpublished)
            return self.completion(run, outputs, unpublished, vetoes), outputs
        except FATAL:
            raise
        except Exception as exc:
            return self.failed_unit(run, exc), exc

    async def execute(self, task: TaskView, unpublished: bool = False) -> Outcome:
        """Start, run and finish one task; its outcome is committed before this returns."""
        agent = self.agents.get(task.agent)
        if agent is None:
            missing = LookupError(f"agent {task.agent!r} is not defined in this program")
            await self.kernel.emit([self.failure(task, missing)])
            return missing
        run = self.start(task, agent)
        # A model agent with no component and no orchestrator component: nothing awaits
        # between its last answer and its outcome unit, which then carries the answer
        # (``ModelCalls.call``). A validation retry queues it first.
        plain = not (agent.utilities or agent.engines)
        if agent.function is None and plain and self.orchestrator is None:
            run.paid = []
        return await self.conclude(run, await self.settled(run, unpublished))

    async def conclude(self, run: TaskRun, settled: tuple[list[Event], Outcome]) -> Outcome:
        """Commit a run's outcome, then its error handlers and component hooks."""
        events, outcome = settled
        await self.kernel.commit(events)
        if isinstance(outcome, Exception):
            await self.on_error(run, outcome)
        if run.agent.utilities or run.agent.engines:
            await self.after_commit(run, outcome)
        return outcome

    async def after_commit(self, run: TaskRun, outcome: Outcome) -> None:
        """Component hooks once the outcome is durable (post-publish/error, terminate)."""
        try:
            await agent_hooks.after_commit(run, outcome, self.kernel.artifacts)
        except Exception as hook_exc:  # the task is recorded already; a hook cannot undo it
            self.handler_failures.append((run.task.id, repr(hook_exc)))
