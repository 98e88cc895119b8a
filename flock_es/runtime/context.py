"""What a running agent can see of its task."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flock_es.runtime.store import AgentStore, Artifact


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
    call_index: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # Earlier artifacts of the correlation this agent may see (agents built ``.with_context()``).
    context: list[Artifact] = field(default_factory=list)
    # The blackboard filtered by this agent's visibility.
    store: AgentStore | None = None
