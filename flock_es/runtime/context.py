"""What a running agent can see of its task, and what the runtime keeps about it.

``AgentContext`` is the user's: what an agent function or ``on_error`` handler
is given. ``TaskRun`` is the kernel's bookkeeping for one execution of a task
(its attempt, priority, next model-call index); it never rides on the user's
context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flock_es.runtime.artifacts import RunArtifacts
from flock_es.runtime.store import AgentStore, artifact_of

if TYPE_CHECKING:
    from flock_es.domain.events import Event
    from flock_es.projection.state import RunState, TaskView
    from flock_es.runtime.agent import Agent
    from flock_es.runtime.board_queries import BoardSource
    from flock_es.runtime.engine_llm import EngineLLM
    from flock_es.runtime.store import Artifact

__all__ = ["AgentContext", "TaskRun", "build_context", "correlation_of"]


@dataclass(slots=True)
class AgentContext:
    """Passed to function agents that take two arguments, and to ``on_error`` handlers.

    Example::

        def shout(note: Note, ctx: AgentContext) -> Loud:
            return Loud(text=f"{ctx.agent}: {note.text.upper()}")
    """

    run_id: str
    task_id: str
    agent: str
    attempt: int
    input_ids: list[str]
    correlation_id: str | None = None
    # Free for the user's own use (handlers and functions of one task share it).
    extra: dict[str, Any] = field(default_factory=dict)
    # Earlier artifacts of the correlation this agent may see (agents built ``.with_context()``).
    context: list[Artifact] = field(default_factory=list)
    # The blackboard filtered by this agent's visibility.
    store: AgentStore | None = None
    # Recorded model calls for a custom engine (agents with components; see engine_llm.py).
    llm: EngineLLM | None = None
    # The task consumes a batch (engines then get ``evaluate_batch``), as Flock's ctx says.
    is_batch: bool = False


@dataclass(slots=True)
class TaskRun:
    """One execution of a task as the runtime tracks it (not visible to the agent).

    Its ``ctx`` is built on first use: most function agents never see one (they
    take one argument), and building it was a tenth of such a run's cost. Built
    later, it is the same: it depends on the task's inputs, which are durable
    before the task starts, and on the recorded ``context_ids``.
    """

    task: TaskView
    agent: Agent
    state: RunState
    attempt: int
    priority: int
    t0: float
    context_ids: list[str] | None = None
    board: BoardSource | None = None
    # The index the task's next model call gets: (task id, index) keys its record.
    calls: int = 0
    # Positions of outputs an orchestrator component blocked (recorded, not scheduled).
    # (Assigned, never changed in place: runs share the empty one.)
    blocked: frozenset[int] | set[int] = frozenset()
    built: AgentContext | None = None
    # ``task.started`` held back: an inline run records it only if it suspends or
    # fails (``Executor.start_held``).
    held_start: bool = False
    # Paid answers (``model.called``, applied) held for the task's outcome unit, which
    # commits them with its outputs: a list when nothing can suspend between an answer
    # and that unit (``Executor.execute`` decides), None when each answer is queued on
    # its own as it arrives (components, workers, replay).
    paid: list[Event] | None = None
    # Seconds its model calls waited for a slot, on failed attempts or between them
    # (``waited_ms`` of its outcome): the rest of its time is the agent's work.
    waited: float = 0.0
    # Seconds the model took to answer the calls made now, and its tools to run: all a
    # model agent's work (``Executor.waited``); served ones took none.
    answered: float = 0.0

    @property
    def ctx(self) -> AgentContext:
        """The agent's context for this execution (one object, built once)."""
        ctx = self.built
        if ctx is None:
            ctx = self.built = build_context(
                self.state, self.task, self.agent, self.attempt, self.context_ids, self.board
            )
        return ctx

    @property
    def correlation_id(self) -> str | None:
        """The correlation the task works in (its outputs carry it)."""
        ctx = self.built
        return ctx.correlation_id if ctx is not None else correlation_of(self.state, self.task)

    def next_call(self) -> int:
        index = self.calls
        self.calls += 1
        return index


def correlation_of(state: RunState, task: TaskView) -> str | None:
    """The correlation id a task works in: that of its first known input."""
    arts = state.artifacts
    for i in task.inputs:  # a loop, not next() over a generator: once per task run
        view = arts.get(i)
        if view is not None:
            return view.correlation_id
    return None


def build_context(
    state: RunState,
    task: TaskView,
    agent: Agent,
    attempt: int,
    context_ids: list[str] | None = None,
    board: BoardSource | None = None,
) -> AgentContext:
    """The context ``agent`` runs ``task`` with; the engine and replay both build it here,
    so a function agent sees the same ``ctx`` live, on resume and under replay.

    ``context_ids`` are the correlation artifacts recorded for the task
    (``task.started``); the store reads ``state`` as it is when queried, and
    ``board`` (the run's database) up to the seq of the task's last input.

    Example::

        ctx = build_context(state, state.tasks[task_id], agent, attempt=1)
        notes = await ctx.store.get_by_type(Note)
    """
    ctx = AgentContext(
        run_id=state.run_id,
        task_id=task.id,
        agent=agent.name,
        attempt=attempt,
        input_ids=list(task.inputs),
        correlation_id=correlation_of(state, task),
    )
    arts = state.artifacts  # a task's inputs are pinned: the state holds their views
    seqs = [s for i in task.inputs if i in arts and (s := arts[i].seq) is not None]
    ctx.store = AgentStore(lambda: state, agent.identity(), board, max(seqs, default=None))
    if context_ids:
        known = RunArtifacts(state, board)  # context may be older than the views held
        ctx.context = [artifact_of(v) for v in known.get_many(context_ids)]
    return ctx
