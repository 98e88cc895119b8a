"""One process's seat at a run on a shared log (PostgreSQL, or one SQLite file).

A ``RunLink`` is the kernel's sink (and the run's ``EventWriter``):

- every unit the kernel hands it is committed by one drain task, in batches
  (group commit), each batch in one transaction holding the run's lock;
- inside that transaction it first applies what other processes committed
  to the run since its cursor, then builds the decisions that wait on the
  state (``submit_built(decide)``, used by ``Kernel.commit_decided``), so
  they are made on the current state;
- the commit is fenced: task leases this process holds that another worker
  took over are reported (``lost``), so their outcomes are dropped instead of
  completing a task twice; a coordinator's commits also check the run lease;
- the kernel's own events are applied before they commit (as the kernel
  always does); the cursor then moves past them, as nothing else of the run
  can come between the turn's catch-up and its own events (the turn holds the
  run's lock), so catching up never reads them back.

``SharedActor`` is the kernel's actor on a shared log: it starts nothing
itself (workers claim the tasks) and only wakes the claimer.

Example::

    link = RunLink(await open_store(url).open_shared(), run_id)
    kernel, calls = flock.kernel_for(run_id, link, state)
    link.bind(kernel)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from flock_es.domain.events import (
    ArtifactDecided,
    Event,
    EventKind,
    TaskCompleted,
    body_as,
)
from flock_es.errors import DatabaseError
from flock_es.log.ports import Lease
from flock_es.log.shared_ports import SharedRuns
from flock_es.projection.fold import apply
from flock_es.projection.state import RunState
from flock_es.runtime.kernel import Kernel
from flock_es.runtime.work import Work

__all__ = ["RunLink", "SharedActor", "idle"]

Build = Callable[[], list[Event]]
_ENDED = (EventKind.TASK_COMPLETED, EventKind.TASK_FAILED)
_DECIDED = EventKind.ARTIFACT_DECIDED


@dataclass(slots=True)
class _Unit:
    build: Build
    future: asyncio.Future[list[Event]] | None


def idle(state: RunState) -> bool:
    """No task left to run, and no batch, join window or release waiting for its
    time (a local run waits for its armed timers too)."""
    if state.has_pending_tasks() or state.unreleased:
        return False
    if any(b.members and b.deadline is not None for b in state.batches.values()):
        return False
    return not any(
        g.deadline is not None for gate in state.gates.values() for g in gate.groups.values()
    )


class RunLink:
    """The kernel's sink and the run's writer for ``run_id``, on a shared log."""

    def __init__(
        self,
        runs: SharedRuns,
        run_id: str,
        on_launch: Callable[[str], None] | None = None,
        held: Callable[[], list[str]] | None = None,
        worker: str | None = None,
    ) -> None:
        self.runs = runs
        self.run_id = run_id
        self.cursor = 0
        self.commits = 0
        self.committed_events = 0
        self.on_launch = on_launch
        self.held = held or list
        self.worker = worker
        # The run lease a coordinator's commits must still hold (``run``/``resume``).
        self.fence: Lease | None = None
        # Tasks whose leases another worker took over while this one executed them.
        self.lost: set[str] = set()
        # Tasks this link's commits ended (their leases dropped with them) that the
        # worker still counts as held until their executions let go (``let_go``): the
        # next turn may start before they do, and must not take them for lost.
        self.ended: set[str] = set()
        self.broken: BaseException | None = None
        # What stopped this process's work on the run (a task's commit that failed, a
        # changed program): waiting for the run (``until_idle``) raises it.
        self.failure: BaseException | None = None
        self.on_close: Callable[[], Awaitable[None]] | None = None
        self._kernel: Kernel | None = None
        self._queue: list[_Unit] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._lock = asyncio.Lock()  # one catch-up or commit at a time
        self._drainer: asyncio.Task[None] | None = None

    @property
    def bound(self) -> bool:
        return self._kernel is not None

    @property
    def kernel(self) -> Kernel:
        assert self._kernel is not None, "RunLink.bind() first"
        return self._kernel

    def _write_error(self, exc: BaseException) -> DatabaseError:
        """The one-line error of a commit that failed with ``exc`` (said once, if the
        log already said it)."""
        if isinstance(exc, DatabaseError):
            return exc
        return DatabaseError(f"cannot write to {self.runs.location}: {exc}")

    def bind(self, kernel: Kernel) -> None:
        """Follow and commit for ``kernel`` (whose sink this link is)."""
        self._kernel = kernel
        self._drainer = asyncio.create_task(self._drain(), name=f"flock-es:link:{self.run_id}")

    # --- EventWriter --------------------------------------------------------

    def _put(self, build: Build, wait: bool) -> asyncio.Future[list[Event]] | None:
        if self.broken is not None:
            raise self._write_error(self.broken)
        if self._closing:
            raise DatabaseError(f"the log writer for {self.runs.location} is closed")
        fut = asyncio.get_running_loop().create_future() if wait else None
        self._queue.append(_Unit(build, fut))
        self._wake.set()
        return fut

    def submit(self, events: list[Event]) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        inner = self._put(lambda: events, True)
        assert inner is not None

        def relay(f: asyncio.Future[list[Event]]) -> None:
            if done.done():
                return
            if f.exception() is not None:
                done.set_exception(f.exception())  # type: ignore[arg-type]
            else:
                done.set_result(None)

        inner.add_done_callback(relay)
        return done

    def enqueue(self, events: list[Event]) -> None:
        self._put(lambda: events, False)

    async def append(self, events: list[Event]) -> None:
        await self.submit(events)

    async def close(self) -> None:
        """Commit what is queued, then stop the drain task."""
        self._closing = True
        self._wake.set()
        if self._drainer is not None:
            with contextlib.suppress(Exception):
                await self._drainer
        if self.on_close is not None:
            done, self.on_close = self.on_close, None
            await done()

    async def submit_built(self, build: Build) -> list[Event]:
        """Commit what ``build()`` returns; it runs under the run's lock, caught up."""
        fut = self._put(build, True)
        assert fut is not None
        return await fut

    def let_go(self, task_id: str) -> None:
        """The worker's execution of ``task_id`` is over: it is no longer held."""
        self.lost.discard(task_id)
        self.ended.discard(task_id)

    def launch(self, task_id: str) -> None:
        if self.on_launch is not None:
            self.on_launch(task_id)

    async def until_idle(self) -> None:
        """Follow the log until the run has nothing left to do."""
        while True:
            if self.failure is not None:
                raise self.failure
            await self.catch_up()
            if idle(self.kernel.state) and not self._queue:
                return
            await asyncio.sleep(0.05)

    # --- following and committing -------------------------------------------

    async def catch_up(self, unless_committing: bool = False) -> None:
        """Apply what other processes committed since the cursor. ``unless_committing``:
        not now if a commit is on its way (it catches up first, under the same lock)."""
        if unless_committing and self._lock.locked():
            return
        async with self._lock:
            self.apply_foreign(await self.runs.events_after(self.run_id, self.cursor))

    def apply_foreign(self, events: list[Event]) -> None:
        kernel = self.kernel
        state = kernel.state
        foreign = []
        decided: dict[str, int] = {}  # artifacts another process decided: their seqs
        for e in events:
            seq = e.seq or 0
            if seq <= self.cursor:  # read before this link's last turn moved past it
                continue
            self.cursor = seq
            if e.kind is _DECIDED:  # its seq, before the fold lets go of it
                aid = body_as(e, ArtifactDecided)["id"]
                at = state.undecided.get(aid)
                if at is not None:
                    decided[aid] = at
            apply(state, e)
            foreign.append(e)
        if decided:
            # A compact state holds no view of a deferred artifact until its decision
            # (``RunArtifacts.hold``, in one read by seq): another process's decision
            # made it pending work's (its inputs: their correlation, ctx.store's bound).
            kernel.artifacts.hold(decided, decided)
        if foreign:
            kernel.committed(foreign)  # seqs, listeners (progress), the actor

    async def _drain(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._queue:
                if self._closing:
                    return
                continue
            units, self._queue = self._queue, []
            async with self._lock:
                await self._commit_units(units)

    async def _commit_units(self, units: list[_Unit]) -> None:
        turn = _Turn(self, units)
        try:
            events = await self.runs.commit_turn(self.run_id, turn)
        except BaseException as exc:
            # The kernel already applied these events: its state is now ahead of the
            # log, so this link refuses further work (the process stops; leases expire).
            self.broken = exc
            for u in units:
                if u.future is not None and not u.future.done():
                    u.future.set_exception(self._write_error(exc))
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        # The turn caught up under the run's lock, which it held while its events were
        # appended: every event of the run up to its last one is applied here.
        self.cursor = max([self.cursor, *(e.seq for e in events if e.seq is not None)])
        self.ended.update(turn.ended_here)
        self.commits += 1
        self.committed_events += len(events)
        for u, evs in zip(units, turn.built, strict=True):
            if u.future is not None and not u.future.done():
                u.future.set_result(evs)


class _Turn:
    """A ``RunTurn``: the units of one group commit of a ``RunLink``."""

    def __init__(self, link: RunLink, units: list[_Unit]) -> None:
        self.link = link
        self.units = units
        self.cursor = link.cursor
        self.worker = link.worker
        self.fence = link.fence
        self.built: list[list[Event]] = []
        self.ended_here: list[str] = []
        self._held: set[str] = set()

    def held(self) -> list[str]:
        # Not the tasks an earlier turn ended: their leases went with that commit.
        ended = self.link.ended
        held = [t for t in self.link.held() if t not in ended]
        self._held = set(held)
        return held

    def catch_up(self, events: list[Event], lost: set[str]) -> None:
        self.link.lost |= lost
        self.link.apply_foreign(events)

    def build(self) -> list[Event]:
        lost = self.link.lost
        built = [u.build() for u in self.units]
        if lost:  # what this process recorded for tasks it no longer holds is not committed
            built = [[e for e in evs if e.task_id not in lost] for evs in built]
        self.built = built
        return [e for evs in built for e in evs]

    def ended(self, events: list[Event]) -> list[str]:
        """Leases to drop with this commit: the tasks it ended that this worker held."""
        held = self._held
        # task.completed and task.failed carry the task id under the same field.
        ended = [body_as(e, TaskCompleted)["task_id"] for e in events if e.kind in _ENDED]
        self.ended_here = [task_id for task_id in ended if task_id in held]
        return self.ended_here


class SharedActor:
    """The kernel's actor on a shared log: tasks are claimed by workers, so a
    committed schedule only wakes the claimer; ``work`` (a run's engine) is kept
    busy until the run is idle, so ``run_until_idle`` waits for the workers."""

    def __init__(self, link: RunLink, wake: Callable[[], None], work: Work | None = None) -> None:
        self.link = link
        self.wake = wake
        self.work = work
        self._waiter: asyncio.Task[object] | None = None

    def act(self, events: list[Event]) -> None:
        if not any(e.kind in _WAKE for e in events):
            return
        self.wake()
        if self.work is not None and (self._waiter is None or self._waiter.done()):
            self._waiter = self.work.spawn(self.link.until_idle(), "flock-es:shared-idle")


# What gives a run work to wait for: a task, a batch, a join window, a release.
_WAKE = (
    EventKind.TASK_SCHEDULED,
    EventKind.BATCH_BUFFERED,
    EventKind.GATE_BUFFERED,
    EventKind.ARTIFACT_PUBLISHED,
)
