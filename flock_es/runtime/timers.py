"""Timers of batch timeouts, join windows and AfterVisibility releases.

When a batch times out, a join group expires or an artifact is released is in
the log (the ``deadline`` of ``batch.buffered``/``gate.buffered``, the
artifact's ttl); a timer only decides *when* to record the outcome, which is
then an event like any other, committed through the kernel. ``rearm`` restores
every timer from a folded state, so a resumed run expires and releases the
same things.

Each outcome is decided inside ``Kernel.commit_decided``, on the state as it
is when it commits: on a shared log that is under the run's lock, caught up
with the other processes, so when several workers arm the same timer exactly
one records the flush, expiry or release (the others find it done and decide
nothing).

A fork continues from a point in its parent's past: the time left on each
inherited timer at the fork point is what it gets from the moment of the fork,
so a fork taken long after its parent does not flush a batch early and split
it. The fork's ``run.started`` records both moments (its own ts and
``fork_ts``), so every process that arms the fork's timers (the fork itself,
workers of a shared fork, a later resume) moves them alike.

Example::

    timers = Timers(kernel, work)
    timers.arm_batch("editor", 0)
    timers.rearm()  # everything the folded state calls for
"""

from __future__ import annotations

import asyncio
import time

from flock_es.domain.events import Event, ScheduleReason
from flock_es.projection.decide import decide_batch_flush, decide_release
from flock_es.projection.gates import decide_join_expiry
from flock_es.runtime.kernel import Kernel
from flock_es.runtime.work import Work

__all__ = ["Timers"]

JoinKey = tuple[str, int, str]
BatchKey = tuple[str, int]


class Timers:
    """The batch, join-window and release timers of one run."""

    def __init__(self, kernel: Kernel, work: Work) -> None:
        self.kernel = kernel
        self.work = work
        self.batches: dict[BatchKey, asyncio.Task[None]] = {}
        self.joins: dict[JoinKey, tuple[float, asyncio.Task[None]]] = {}
        self.releases: dict[str, asyncio.Task[None]] = {}
        # Deadlines decided at or before ``inherited_until`` are moved by ``shift`` (a
        # fork: see ``_follow_fork``).
        self.shift = 0.0
        self.inherited_until = float("-inf")

    def _due(self, deadline: float, decided_at: float) -> float:
        return deadline + self.shift if decided_at <= self.inherited_until else deadline

    def _follow_fork(self) -> None:
        """A fork's inherited deadlines move by the time between its fork point and
        its start, both recorded in its ``run.started``."""
        state = self.kernel.state
        if state.fork_ts is not None and state.started_at is not None:
            self.shift = max(0.0, state.started_at - state.fork_ts)
            self.inherited_until = state.fork_ts

    # --- batches -----------------------------------------------------------

    def arm_batch(self, agent: str, sub_index: int) -> None:
        """Flush a partial batch when its timeout passes (unless it fills first).

        Nothing is armed for a batch the state no longer buffers (or buffers without
        a timeout): the timer would end on its first step. A committed group acts on
        its units one after another on a state that has folded all of them, so the
        units that buffered a batch the group's last unit filled (seven analysts
        before the eighth, issue 14 (a)) each started a timer that the same act's
        ``prune`` then cancelled, on the path to the task the batch scheduled."""
        key = (agent, sub_index)
        buf = self.kernel.state.batches.get(key)
        if buf is None or buf.deadline is None:
            return
        timer = self.batches.get(key)
        if timer is not None and not timer.done():
            return
        self.batches[key] = self.work.spawn(self._batch(key), f"flock-es:batch:{agent}")

    async def _batch(self, key: BatchKey) -> None:
        state = self.kernel.state
        while True:
            buf = state.batches.get(key)
            if buf is None or buf.deadline is None:
                return
            delay = self._due(buf.deadline, buf.opened_at) - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            self.batches.pop(key, None)
            await self.kernel.commit_decided(lambda: self._flush(key))
            return

    def _flush(self, key: BatchKey) -> list[Event]:
        state = self.kernel.state
        buf = state.batches.get(key)
        now = time.time()
        if buf is None or buf.deadline is None or self._due(buf.deadline, buf.opened_at) > now:
            return []  # flushed (or refilled) meanwhile, by its size or another worker
        events = decide_batch_flush(state, key[0], key[1], ScheduleReason.BATCH_TIMEOUT, now)
        self.kernel.apply(events)
        return events

    # --- joins and releases ------------------------------------------------

    def arm_join(self, agent: str, sub_index: int, key: str, deadline: float) -> None:
        """Expire a join group when its time window passes (unless it completes first)."""
        jkey = (agent, sub_index, key)
        old = self.joins.get(jkey)
        if old is not None:
            if old[0] == deadline and not old[1].done():
                return
            old[1].cancel()
        task = self.work.spawn(self._join(jkey, deadline), f"flock-es:join:{agent}")
        self.joins[jkey] = (deadline, task)

    async def _join(self, jkey: JoinKey, deadline: float) -> None:
        gate = self.kernel.state.gates.get((jkey[0], jkey[1]))
        group = gate.groups.get(jkey[2]) if gate is not None else None
        opened = group.opened_at if group is not None else time.time()
        await asyncio.sleep(max(0.0, self._due(deadline, opened) - time.time()))
        if self.joins.get(jkey, (0.0, None))[1] is asyncio.current_task():
            self.joins.pop(jkey, None)

        def expire() -> list[Event]:
            now = max(time.time(), deadline)
            events = decide_join_expiry(self.kernel.state, *jkey, deadline, now)
            self.kernel.apply(events)
            return events

        await self.kernel.commit_decided(expire)

    def arm_release(self, aid: str) -> None:
        """Release an AfterVisibility artifact when its ttl passes; its consumers then fire."""
        old = self.releases.get(aid)
        if old is not None and not old.done():
            return
        self.releases[aid] = self.work.spawn(self._release(aid), f"flock-es:release:{aid}")

    async def _release(self, aid: str) -> None:
        kernel = self.kernel
        due = kernel.state.unreleased.get(aid)
        if due is None:
            return
        view = kernel.state.artifacts.get(aid)
        await asyncio.sleep(max(0.0, self._due(due, view.ts if view else due) - time.time()))
        self.releases.pop(aid, None)

        def release() -> list[Event]:
            if aid not in kernel.state.unreleased:
                return []  # another worker released it
            obj = kernel.decision_obj(kernel.artifacts.require(aid))
            events = decide_release(kernel.state, kernel.index, aid, obj, time.time())
            kernel.apply(events)
            return events

        await kernel.commit_decided(release)

    # --- all of them -------------------------------------------------------

    def prune(self) -> None:
        """Cancel the timers of batches and groups that flushed, completed or expired."""
        state = self.kernel.state
        if self.batches:
            for key, timer in list(self.batches.items()):
                if key not in state.batches:
                    timer.cancel()
                    self.batches.pop(key, None)
        if not self.joins:
            return
        gates = state.gates
        for jkey, (deadline, task) in list(self.joins.items()):
            gate = gates.get((jkey[0], jkey[1]))
            group = gate.groups.get(jkey[2]) if gate is not None else None
            if group is None or group.deadline != deadline:
                task.cancel()
                self.joins.pop(jkey, None)

    def rearm(self) -> None:
        """Arm every timer the folded state calls for (resume, workers, a fork's
        inherited ones moved by its recorded fork point)."""
        self._follow_fork()
        state = self.kernel.state
        for key, buf in state.batches.items():
            if buf.deadline is not None:
                self.arm_batch(*key)
        for (agent, sub_index), gate in state.gates.items():
            for group in gate.groups.values():
                if group.deadline is not None:
                    self.arm_join(agent, sub_index, group.key, group.deadline)
        for aid in list(state.unreleased):
            self.arm_release(aid)

    def stop(self) -> None:
        """Cancel join and release timers (a closing run records no more; resume re-arms them)."""
        for _, task in self.joins.values():
            task.cancel()
        self.joins.clear()
        for task in self.releases.values():
            task.cancel()
        self.releases.clear()
