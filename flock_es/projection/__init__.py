"""The projection: a pure fold of events into the state of one run."""

from flock_es.projection.fold import apply, evolve, fold
from flock_es.projection.state import (
    AgentView,
    ArtifactView,
    BatchView,
    CallView,
    RunState,
    TaskView,
)

__all__ = [
    "AgentView",
    "ArtifactView",
    "BatchView",
    "CallView",
    "RunState",
    "TaskView",
    "apply",
    "evolve",
    "fold",
]
