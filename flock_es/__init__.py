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

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from flock_es._version import __version__

# The public API resolves on first use, so ``import flock_es.domain.events`` (or
# the TUI, or ``flock-es --help``) does not load the runtime, aiosqlite or litellm.
_API = {
    "AfterVisibility": "flock_es.domain.visibility",
    "AgentBuilder": "flock_es.runtime.agent_builder",
    "AgentComponent": "flock_es.runtime.components",
    "AgentComponentConfig": "flock_es.runtime.components",
    "AgentContext": "flock_es.runtime.context",
    "Artifact": "flock_es.runtime.store",
    "BatchSpec": "flock_es.domain.subscriptions",
    "EngineComponent": "flock_es.runtime.components",
    "EvalInputs": "flock_es.runtime.eval_types",
    "EvalResult": "flock_es.runtime.eval_types",
    "EventKind": "flock_es.domain.events",
    "FilterConfig": "flock_es.runtime.board_queries",
    "Flock": "flock_es.runtime.flock",
    "FlockError": "flock_es.errors",
    "JoinSpec": "flock_es.domain.subscriptions",
    "LabelledVisibility": "flock_es.domain.visibility",
    "OrchestratorComponent": "flock_es.runtime.orchestrator_components",
    "OrchestratorComponentConfig": "flock_es.runtime.orchestrator_components",
    "PrivateVisibility": "flock_es.domain.visibility",
    "PublicVisibility": "flock_es.domain.visibility",
    "RetryPolicy": "flock_es.models.retry",
    "RunState": "flock_es.projection.state",
    "RunStatus": "flock_es.domain.events",
    "ScheduleDecision": "flock_es.runtime.orchestrator_components",
    "ScheduleReason": "flock_es.domain.events",
    "StdioServerParameters": "flock_es.models.mcp_client",
    "StreamableHttpServerParameters": "flock_es.models.mcp_client",
    "Store": "flock_es.runtime.store",
    "TaskStatus": "flock_es.domain.events",
    "TenantVisibility": "flock_es.domain.visibility",
    "UserError": "flock_es.errors",
    "Visibility": "flock_es.domain.visibility",
    "evolve": "flock_es.projection.fold",
    "flock_tool": "flock_es.domain.registry",
    "flock_type": "flock_es.domain.registry",
    "fold": "flock_es.projection.fold",
}

if TYPE_CHECKING:
    from flock_es.domain.events import EventKind, RunStatus, ScheduleReason, TaskStatus
    from flock_es.domain.registry import flock_tool, flock_type
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
    from flock_es.models.mcp_client import StdioServerParameters, StreamableHttpServerParameters
    from flock_es.models.retry import RetryPolicy
    from flock_es.projection.fold import evolve, fold
    from flock_es.projection.state import RunState
    from flock_es.runtime.agent_builder import AgentBuilder
    from flock_es.runtime.board_queries import FilterConfig
    from flock_es.runtime.components import AgentComponent, AgentComponentConfig, EngineComponent
    from flock_es.runtime.context import AgentContext
    from flock_es.runtime.eval_types import EvalInputs, EvalResult
    from flock_es.runtime.flock import Flock
    from flock_es.runtime.orchestrator_components import (
        OrchestratorComponent,
        OrchestratorComponentConfig,
        ScheduleDecision,
    )
    from flock_es.runtime.store import Artifact, Store

__all__ = [
    "AfterVisibility",
    "AgentBuilder",
    "AgentComponent",
    "AgentComponentConfig",
    "AgentContext",
    "Artifact",
    "BatchSpec",
    "EngineComponent",
    "EvalInputs",
    "EvalResult",
    "EventKind",
    "FilterConfig",
    "Flock",
    "FlockError",
    "JoinSpec",
    "LabelledVisibility",
    "OrchestratorComponent",
    "OrchestratorComponentConfig",
    "PrivateVisibility",
    "PublicVisibility",
    "RetryPolicy",
    "RunState",
    "RunStatus",
    "ScheduleDecision",
    "ScheduleReason",
    "StdioServerParameters",
    "Store",
    "StreamableHttpServerParameters",
    "TaskStatus",
    "TenantVisibility",
    "UserError",
    "Visibility",
    "__version__",
    "evolve",
    "flock_tool",
    "flock_type",
    "fold",
]


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first access (PEP 562)."""
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
