"""Timers of join windows and AfterVisibility releases.

The time at which a join group expires or an artifact is released is in the
log (the group's ``deadline`` in ``gate.buffered``, the artifact's ttl in
``artifact.published``); a timer only decides *when* to record the outcome,
which is then an event like any other. ``rearm`` restores every timer from a
folded state, so a resumed run expires and releases the same things.
Timers are tracked as engine work: ``run_until_idle`` waits for them, as it
waits for batch timeouts.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from flock_es.projection.decide import decide_release
from flock_es.projection.gates import decide_join_expiry

if TYPE_CHECKING:
    from flock_es.runtime.engine import Engine

JoinKey = tuple[str, int, str]


class GateTimers:
    """Join-window and release timers of one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.joins: dict[JoinKey, tuple[float, asyncio.Task[None]]] = {}
        self.releases: dict[str, asyncio.Task[None]] = {}

    def arm_join(self, agent: str, sub_index: int, key: str, deadline: float) -> None:
        """Expire a join group when its time window passes (unless it completes first)."""
        jkey = (agent, sub_index, key)
        old = self.joins.get(jkey)
        if old is not None:
            if old[0] == deadline and not old[1].done():
                return
            old[1].cancel()
        task = asyncio.create_task(self._join(jkey, deadline), name=f"flock-es:join:{agent}")
        self.joins[jkey] = (deadline, task)
        self.engine._track(task)

    async def _join(self, jkey: JoinKey, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - time.time()))
        if self.joins.get(jkey, (0.0, None))[1] is asyncio.current_task():
            self.joins.pop(jkey, None)
        engine = self.engine
        events = decide_join_expiry(engine.state, *jkey, deadline, time.time())
        if events:
            await engine.emit(events)

    def arm_release(self, aid: str) -> None:
        """Release an AfterVisibility artifact when its ttl passes; its consumers then fire."""
        old = self.releases.get(aid)
        if old is not None and not old.done():
            return
        task = asyncio.create_task(self._release(aid), name=f"flock-es:release:{aid}")
        self.releases[aid] = task
        self.engine._track(task)

    async def _release(self, aid: str) -> None:
        engine = self.engine
        due = engine.state.unreleased.get(aid)
        if due is None:
            return
        await asyncio.sleep(max(0.0, due - time.time()))
        self.releases.pop(aid, None)
        await engine.emit(
            decide_release(engine.state, engine.index, aid, engine.obj(aid), time.time())
        )

    def prune(self) -> None:
        """Cancel the timers of groups that completed or expired: nothing left to time."""
        gates = self.engine.state.gates
        for jkey, (deadline, task) in list(self.joins.items()):
            gate = gates.get((jkey[0], jkey[1]))
            group = gate.groups.get(jkey[2]) if gate is not None else None
            if group is None or group.deadline != deadline:
                task.cancel()
                self.joins.pop(jkey, None)

    def rearm(self) -> None:
        """Arm every timer the folded state calls for (resume)."""
        state = self.engine.state
        for (agent, sub_index), gate in state.gates.items():
            for group in gate.groups.values():
                if group.deadline is not None:
                    self.arm_join(agent, sub_index, group.key, group.deadline)
        for aid in list(state.unreleased):
            self.arm_release(aid)

    def stop(self) -> None:
        """Cancel all (a closing run records no more; resume re-arms them)."""
        for _, task in self.joins.values():
            task.cancel()
        self.joins.clear()
        for task in self.releases.values():
            task.cancel()
        self.releases.clear()
