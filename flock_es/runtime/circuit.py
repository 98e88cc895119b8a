"""flock-core's circuit-breaker rule, as an option: the counts start again at idle.

By default the breaker (``max_agent_iterations``) counts an agent's runs over
the whole run. ``Flock(reset_circuit_at_idle=True)`` clears the counts each
time ``run_until_idle()`` finds the run idle, as flock-core does, for a
long-lived program that publishes many requests into one run. Going idle
depends on timing, so the reset is recorded (``circuit.reset``) and resume
and replay fold it instead of deciding it again.

Example::

    flock = Flock(max_agent_iterations=50, reset_circuit_at_idle=True)
    for request in requests:
        await flock.publish(request)
        await flock.run_until_idle()   # each request gets 50 runs per agent
"""

from __future__ import annotations

import time

from flock_es.domain.events import CircuitReset, EventKind, make_event
from flock_es.runtime.engine import Engine

__all__ = ["reset_at_idle"]


async def reset_at_idle(engine: Engine) -> None:
    """Record ``circuit.reset`` for the agents that ran since the last reset, if any."""
    state = engine.kernel.state
    if state.max_agent_iterations is None and engine.kernel.index.max_iterations is None:
        return  # no breaker: nothing to reset, nothing to record
    agents = sorted(a.name for a in state.agents.values() if a.scheduled > a.breaker_base)
    if agents:
        body = CircuitReset(agents=agents)
        await engine.emit([make_event(state.run_id, EventKind.CIRCUIT_RESET, body, time.time())])
