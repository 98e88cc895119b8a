"""Flock's one-agent entry points: ``get_agent``, ``invoke``, ``arun`` and ``run``.

They are mixed into :class:`flock_es.runtime.flock.Flock`; they only use its
public ``start``, ``run_until_idle`` and ``close``, so they live apart from the
run's lifecycle. Example::

    flock = Flock()
    pizza = flock.agent("pizza").consumes(Idea).publishes(Pizza)
    [result] = flock.run(pizza, Idea(topic="margherita"))
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel

from flock_es.domain.events import RunStatus
from flock_es.domain.inputs import PublishInput, as_model
from flock_es.errors import DefinitionError
from flock_es.runtime.agent import Agent
from flock_es.runtime.agent_builder import AgentBuilder

if TYPE_CHECKING:
    from flock_es.runtime.engine import Engine

__all__ = ["Invocations"]


class Invocations:
    """Run one agent on given inputs, asynchronously or from a plain script."""

    agents: dict[str, Agent]

    if TYPE_CHECKING:
        # Provided by Flock; declared here so mypy checks the calls below.
        async def start(self) -> Engine: ...

        async def run_until_idle(self, timeout: float | timedelta | None = None) -> bool: ...

        async def close(
            self, status: RunStatus | None = None, reason: str | None = None
        ) -> RunStatus: ...

    def get_agent(self, name: str) -> Agent:
        """The agent declared as ``name`` (``flock.agents`` maps every name to its agent)."""
        if name not in self.agents:
            raise DefinitionError(f"no agent named {name!r}")
        return self.agents[name]

    async def invoke(
        self,
        agent: str | AgentBuilder | Agent,
        obj: PublishInput,
        *,
        publish_outputs: bool = True,
        timeout: float | None = None,
    ) -> list[BaseModel]:
        """Run ``agent`` exactly once on ``obj`` and return its outputs.

        ``obj`` is recorded but not offered to other agents. With
        ``publish_outputs=False`` the outputs are recorded but not published.
        ``timeout`` (seconds) raises ``TimeoutError`` if the outputs are not
        there in time; the task itself goes on and is recorded (or resumed).
        """
        target = self.get_agent(agent if isinstance(agent, str) else agent.name)
        engine = await self.start()
        return await asyncio.wait_for(
            engine.invoke(target, as_model(obj), publish_outputs), timeout=timeout
        )

    async def arun(
        self, agent: str | AgentBuilder | Agent, *inputs: PublishInput
    ) -> list[BaseModel]:
        """Invoke ``agent`` once per input, then wait until idle; returns its outputs."""
        outputs: list[BaseModel] = []
        for obj in inputs:
            outputs.extend(await self.invoke(agent, obj))
        await self.run_until_idle()
        return outputs

    def run(self, agent: str | AgentBuilder | Agent, *inputs: PublishInput) -> list[BaseModel]:
        """Synchronous ``arun`` for scripts: runs the agent, the cascade, and closes the run.

        Not for use inside a running event loop (use ``await flock.arun(...)``). Example::

            pizza = flock.agent("pizza").consumes(Idea).publishes(Pizza)
            [result] = flock.run(pizza, Idea(topic="margherita"))
        """

        async def go() -> list[BaseModel]:
            try:
                return await self.arun(agent, *inputs)
            finally:
                await self.close()

        return asyncio.run(go())
