"""flock-es: the Flock blackboard programming model on a durable SQLite event log.

Example::

    from pydantic import BaseModel
    from flock_es import Flock, flock_type

    @flock_type
    class Idea(BaseModel):
        text: str

    @flock_type
    class Pitch(BaseModel):
        slogan: str

    flock = Flock()  # offline model unless FLOCK_ES_MODEL says otherwise
    flock.agent("pitcher").consumes(Idea).publishes(Pitch)

    async def main() -> None:
        await flock.publish(Idea(text="a pen that never runs dry"))
        await flock.run_until_idle()
"""

__version__ = "0.1.0"

from flock_es.domain.events import EventKind, RunStatus, ScheduleReason, TaskStatus
from flock_es.domain.registry import flock_type
from flock_es.domain.subscriptions import BatchSpec, JoinSpec
from flock_es.domain.visibility import (
    AfterVisibility,
    LabelledVisibility,
    PrivateVisibility,
    PublicVisibility,
    TenantVisibility,
    Visibility,
)
from flock_es.errors import FlockError, UserError
from flock_es.models.retry import RetryPolicy
from flock_es.projection.fold import evolve, fold
from flock_es.projection.state import RunState
from flock_es.runtime.agent import AgentBuilder
from flock_es.runtime.context import AgentContext
from flock_es.runtime.flock import Flock
from flock_es.runtime.store import Artifact, Store

__all__ = [
    "AfterVisibility",
    "AgentBuilder",
    "AgentContext",
    "Artifact",
    "BatchSpec",
    "EventKind",
    "Flock",
    "FlockError",
    "JoinSpec",
    "LabelledVisibility",
    "PrivateVisibility",
    "PublicVisibility",
    "RetryPolicy",
    "RunState",
    "RunStatus",
    "ScheduleReason",
    "Store",
    "TaskStatus",
    "TenantVisibility",
    "UserError",
    "Visibility",
    "__version__",
    "evolve",
    "flock_type",
    "fold",
]
