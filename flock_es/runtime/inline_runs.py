"""Function agents' runs, a chunk at a time, inside the engine's own asyncio task.

Most agent runs never wait for anything (a ``def`` agent, or an ``async def``
one that computes and returns), so an asyncio task per run, and a commit per
run, cost more than the run itself. ``InlineRuns.execute`` runs a chunk of
ready tasks back to back and commits their outcomes as one unit.

A plain function agent (no components, no ``with_context``, no orchestrator
components, not under a worker) is called directly: its function, or the
first step of its coroutine (``eager``), then its completion, with no
coroutine frames of the executor's around it (issue 14: with the start built
only when needed, a tenth of a (b) run's main-thread instructions). Every other agent goes through
``Executor.settled``, stepped at once. A run that suspends is finished by a
task of its own, which commits its outcome after the chunk's unit (that unit
holds its ``task.started``).

Example::

    inline = InlineRuns(executor)
    await inline.execute([state.tasks[t] for t in ready], work.spawn)
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Awaitable
from time import perf_counter
from types import CoroutineType
from typing import Any, cast

from pydantic import BaseModel

from flock_es.domain.events import Event, EventKind
from flock_es.projection.state import TaskView
from flock_es.runtime.agent import Agent
from flock_es.runtime.context import TaskRun
from flock_es.runtime.eager import Suspended, step
from flock_es.runtime.executor import FATAL, Executor, Outcome, Spawn
from flock_es.runtime.outputs import check_output_types, normalise_outputs

__all__ = ["InlineRuns"]

_STARTED = EventKind.TASK_STARTED
# A run that failed on its first step, and the error (its ``on_error`` runs after the commit).
Failed = tuple[TaskRun, Exception]


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    """A coroutine of any awaitable a function returned (so it can be stepped)."""
    return await awaitable


class InlineRuns:
    """Runs chunks of function-agent tasks through one executor."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def plain(self, agent: Agent) -> bool:
        """Whether ``agent``'s runs take the direct path (``_run_plain``)."""
        ex = self.executor
        return not (
            agent.utilities
            or agent.engines
            or agent.with_context
            or ex.worker is not None
            or ex.orchestrator is not None
        )

    async def execute(self, tasks: list[TaskView], spawn: Spawn) -> None:
        """Run a chunk of function-agent tasks back to back; commit them as one unit.

        A run that finishes without waiting (every ``def`` agent, most ``async def``
        ones) adds its outputs and ``task.completed`` to the chunk's unit (its start
        is in the completion, see ``Executor.start_held``). An agent with components
        queues its start on its own, as elsewhere: its hooks may record events
        before the chunk commits, and those must follow its start.
        """
        ex = self.executor
        events: list[Event] = []
        failures: list[Failed] = []
        with_hooks: list[tuple[TaskRun, Outcome]] = []
        agents = ex.agents
        plain: dict[str, bool] = {}
        for task in tasks:
            agent = agents[task.agent]
            direct = plain.get(agent.name)
            if direct is None:
                direct = plain[agent.name] = self.plain(agent)
            if direct:
                failed = self._run_plain(task, agent, events, spawn)
                if failed is not None:
                    failures.append(failed)
                continue
            hooked = bool(agent.utilities or agent.engines)
            run = ex.start(task, agent) if hooked else ex.start_held(task, agent, events)
            done, value, ctx = step(ex.settled(run, False))
            if not done:
                events.extend(ex.held_start(run))
                rest = cast("Suspended[tuple[list[Event], Outcome]]", value)
                spawn(self._resumed(run, rest), f"flock-es:{task.id}", ctx)
                continue
            unit, outcome = cast("tuple[list[Event], Outcome]", value)
            events.extend(unit)
            if isinstance(outcome, Exception):
                failures.append((run, outcome))
            if hooked:
                with_hooks.append((run, outcome))
        await self._commit(events, failures, with_hooks)

    async def _commit(
        self,
        events: list[Event],
        failures: list[Failed],
        with_hooks: list[tuple[TaskRun, Outcome]],
    ) -> None:
        """Commit the chunk's unit, then the failed runs' handlers and the hooks."""
        ex = self.executor
        if events and all(e.kind is _STARTED for e in events):
            # Every run suspended: only starts, which nothing acts on. Queued, not
            # awaited (as ``execute`` does): a commit to wait for would wake the loop
            # while the agents wait, and a wake-up then makes their own timers late.
            ex.kernel.queue(events)
        elif events:
            await ex.kernel.commit(events)
        for run, exc in failures:
            await ex.on_error(run, exc)
        for run, outcome in with_hooks:
            await ex.after_commit(run, outcome)

    def _run_plain(
        self, task: TaskView, agent: Agent, events: list[Event], spawn: Spawn
    ) -> Failed | None:
        """One plain function agent's run: its events go to ``events``.

        As ``Executor.settled`` would run it (the same arguments, context, output
        checks and events), without its coroutine frames. Returns the run and its
        error if it failed; a run that suspends is handed to a task (``spawn``).
        """
        ex = self.executor
        kernel = ex.kernel
        # ``start_held`` for an agent ``plain`` admits (no context, worker or components),
        # with ``Executor.prepare``, ``priority`` and ``batched`` spelled out: the task's
        # subscription read once, and four calls less per run (issue 14).
        subs, si = agent.subscriptions, task.sub_index
        sub = subs[si] if 0 <= si < len(subs) else None
        priority = sub.priority if sub is not None else 0
        board = kernel.artifacts.board
        run = TaskRun(
            task, agent, kernel.state, task.attempt + 1, priority, perf_counter(), None, board
        )
        run.held_start = True
        # ``kernel.obj``'s call only for an input not in its cache (it usually is); one
        # input (most runs) without a comprehension, a function frame of its own in 3.11.
        objects, obj, ids = kernel.objects, kernel.obj, task.inputs
        batched = sub is not None and sub.batch is not None
        arg: Any
        if len(ids) == 1 and not batched:
            arg = objects.get(ids[0])
            if arg is None:
                arg = obj(ids[0])
        else:
            arg = [o if (o := objects.get(i)) is not None else obj(i) for i in ids]
        fn = agent.function
        assert fn is not None
        # Each run in a context of its own, as an asyncio task (and ``eager.step``) gives.
        ctx = contextvars.copy_context()
        try:
            result = ctx.run(fn, arg, run.ctx) if agent.fn_wants_ctx else ctx.run(fn, arg)
            # An ``async def`` agent's coroutine first (checked by its type, as cheap as
            # the BaseModel check), then any other awaitable a function returned.
            cls = type(result)
            is_coro = cls is CoroutineType
            if is_coro or (not isinstance(result, BaseModel) and inspect.isawaitable(result)):
                coro = result if is_coro or inspect.iscoroutine(result) else _awaited(result)
                try:
                    pending = ctx.run(coro.send, None)
                except StopIteration as stop:
                    result = stop.value
                    cls = type(result)
                else:
                    events.extend(ex.held_start(run))
                    rest: Suspended[Any] = Suspended(coro, pending)
                    spawn(self._finish_plain(run, rest), f"flock-es:{task.id}", ctx)
                    return None
            if cls in agent.publishes:
                # One output of a declared class (most runs): what ``normalise_outputs``
                # and ``check_output_types`` make of it, without their two calls.
                outputs: list[BaseModel] = [result]
            else:
                outputs = normalise_outputs(result)
                check_output_types(agent, outputs)
            events.extend(ex.completion(run, outputs, False))
            return None
        except FATAL:
            raise
        except Exception as exc:
            events.extend(ex.failed_unit(run, exc))
            return run, exc

    async def _finish_plain(self, run: TaskRun, rest: Suspended[Any]) -> None:
        """The rest of a plain run that suspended, its outcome, then its commit."""
        ex = self.executor
        settled: tuple[list[Event], Outcome]
        try:
            outputs = normalise_outputs(await rest)
            check_output_types(run.agent, outputs)
            settled = ex.completion(run, outputs, False), outputs
        except FATAL:
            raise
        except Exception as exc:
            settled = ex.failed_unit(run, exc), exc
        await ex.conclude(run, settled)

    async def _resumed(self, run: TaskRun, rest: Suspended[tuple[list[Event], Outcome]]) -> None:
        """The rest of a run that suspended in ``execute``, then its commit."""
        await self.executor.conclude(run, await rest)
