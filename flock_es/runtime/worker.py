"""``flock-es worker``: execute the tasks of shared runs under leases.

A worker loads a program (for its agents' code) and serves every open run of
that program (same content hash) in a PostgreSQL log. For each run it keeps an
engine whose state follows the log. In a loop it catches up, flushes batches
whose timeout passed, and claims scheduled tasks up to ``concurrency``; each
claimed task runs through the same executor as a local run, and its outputs, ``task.completed`` and the
decisions they cause commit in one transaction under the run's lock.

A heartbeat extends the worker's leases. When a worker dies its leases
expire and other workers take the tasks over; model calls it recorded are
served from the record, as ``resume`` does.

Example::

    worker = Worker(program.flock, "postgresql://postgres@127.0.0.1:5432/test")
    await worker.serve(stop_event)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import sys
import time
from collections.abc import Callable

from flock_es.domain.events import Event, ScheduleReason, TaskStatus
from flock_es.errors import UserError
from flock_es.log.pg_runs import PgRuns
from flock_es.projection.decide import decide_batch_flush
from flock_es.projection.fold import apply, fold
from flock_es.projection.state import TaskView
from flock_es.runtime.board_queries import BoardSource
from flock_es.runtime.engine import Engine
from flock_es.runtime.executor import FATAL, Executor
from flock_es.runtime.flock import Flock
from flock_es.runtime.resume import program_hash
from flock_es.runtime.shared_run import RunLink, SharedActor

__all__ = ["LEASE_SECONDS", "ShareRun", "Worker", "worker_id"]

LEASE_SECONDS = 10.0
_counter = itertools.count()


def worker_id() -> str:
    """``host:pid:n``: unique among live workers, shown per task in the TUI."""
    return f"{socket.gethostname()}:{os.getpid()}:{next(_counter)}"


class Worker:
    """Claims and executes the tasks of open runs of one program."""

    def __init__(
        self,
        flock: Flock,
        url: str,
        *,
        concurrency: int = 16,
        lease: float = LEASE_SECONDS,
        only_run: str | None = None,
        model: str | None = None,
    ) -> None:
        self.flock = flock
        self.model = model
        self.skipped: dict[str, str] = {}
        self.url = url
        self.concurrency = concurrency
        self.lease = lease
        self.only_run = only_run
        self.id = worker_id()
        self.hash = program_hash(flock.program)
        self.links: dict[str, RunLink] = {}
        self.executors: dict[str, Executor] = {}
        self.adopted: set[str] = set()
        self.running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.executed = 0
        self._runs: PgRuns | None = None
        self._wake = asyncio.Event()

    @property
    def runs(self) -> PgRuns:
        assert self._runs is not None, "Worker.connect() first"
        return self._runs

    async def connect(self, runs: PgRuns | None = None) -> None:
        self._runs = runs or await PgRuns.open(self.url)

    def link_for(self, run_id: str) -> RunLink:
        """A link for a run this process publishes to (``flock-es run``); served too."""
        link = RunLink(self.runs, run_id, self._on_launch, self._holds(run_id), self.id)
        self.links[run_id] = link
        self.adopted.add(run_id)
        return link

    def _holds(self, run_id: str) -> Callable[[str], bool]:
        return lambda task_id: (run_id, task_id) in self.running

    def _on_launch(self, _task_id: str) -> None:
        self._wake.set()

    def wake(self) -> None:
        """Poll again now (something was scheduled)."""
        self._wake.set()

    # --- the loop -------------------------------------------------------------

    async def serve(self, stop: asyncio.Event, execute: bool = True) -> None:
        """Serve until ``stop`` is set; then give back the leases still held."""
        if self._runs is None:
            await self.connect()
        helpers = [
            asyncio.create_task(self._heartbeat(), name="flock-es:heartbeat"),
            asyncio.create_task(self._listen(), name="flock-es:listen"),
        ]
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                self._wake.clear()
                await self.poll(execute)
                # A commit anywhere (NOTIFY), a task ending here, or 0.25 s: poll again.
                woke = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait([woke, stopped], timeout=0.25, return_when="FIRST_COMPLETED")
                woke.cancel()
        finally:
            stopped.cancel()
            for h in helpers:
                h.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._stop_running()

    async def poll(self, execute: bool = True) -> None:
        """One round: join new runs, catch up, flush due batches, claim tasks."""
        if self.only_run is None:
            open_runs = await self.runs.open_runs(self.hash)
            for run_id in open_runs:
                if run_id not in self.links and run_id not in self.skipped:
                    await self._join(run_id)
            for run_id in [r for r in self.links if r not in open_runs and r not in self.adopted]:
                if not any(key[0] == run_id for key in self.running):
                    await self.links.pop(run_id).close()
        for link in list(self.links.values()):
            if not link.bound:  # adopted, but its first publish has not started it
                continue
            await link.catch_up()
            if execute:
                await self._flush_batches(link)
                await self._claim(link)

    async def _join(self, run_id: str) -> None:
        link = RunLink(self.runs, run_id, self._on_launch, self._holds(run_id), self.id)
        events = await self.runs.events_after(run_id, 0)
        link.cursor = max((e.seq or 0 for e in events), default=0)
        state = fold(events)
        # The run's recorded model, as resume does (one worker serves one program's runs).
        self.flock.model = self.model or state.model or self.flock.model
        try:
            self.flock.check_models()
        except UserError as exc:
            self.skipped[run_id] = str(exc)
            sys.stderr.write(f"flock-es: warning: not serving run {run_id}: {exc}\n")
            return
        kernel, calls = self.flock.kernel_for(run_id, link, state)
        executor = Executor(kernel, self.flock.agents, calls)
        executor.worker = self.id
        # Orchestrator components judge the outputs of tasks this worker runs.
        executor.orchestrator = self.flock.orchestrator_hooks()
        executor.board = BoardSource(self.url, run_id)  # ctx.store's queries
        kernel.actor = SharedActor(link, self._wake.set)
        link.bind(kernel)
        self.links[run_id] = link
        self.executors[run_id] = executor

    async def _claim(self, link: RunLink) -> None:
        free = self.concurrency - len(self.running)
        if free <= 0:
            return
        run_id = link.run_id
        pending = [
            t.id for t in link.kernel.state.pending_tasks() if (run_id, t.id) not in self.running
        ]
        for task_id in await self.runs.claim(run_id, pending, self.id, self.lease, free):
            task = asyncio.create_task(self._execute(link, task_id), name=f"flock-es:{task_id}")
            self.running[(run_id, task_id)] = task

    async def _execute(self, link: RunLink, task_id: str) -> None:
        try:
            # What the previous holder recorded (model calls) must be in the state first.
            await link.catch_up()
            task = link.kernel.state.tasks.get(task_id)
            if task is not None and task.status in (TaskStatus.SCHEDULED, TaskStatus.RUNNING):
                await run_claimed(self.executors[link.run_id], task_id)
                self.executed += 1
        finally:
            self.running.pop((link.run_id, task_id), None)
            with contextlib.suppress(Exception):
                await self.runs.release(link.run_id, self.id, [task_id])
            self._wake.set()

    async def _flush_batches(self, link: RunLink) -> None:
        state = link.kernel.state
        now = time.time()
        due = [
            key
            for key, b in state.batches.items()
            if b.members and b.deadline is not None and b.deadline <= now
        ]
        for agent, sub in due:

            def build(agent: str = agent, sub: int = sub) -> list[Event]:
                buf = state.batches.get((agent, sub))
                at = time.time()
                if buf is None or not buf.members or buf.deadline is None or buf.deadline > at:
                    return []  # another worker flushed it meanwhile
                events = decide_batch_flush(state, agent, sub, ScheduleReason.BATCH_TIMEOUT, at)
                for e in events:
                    apply(state, e)
                return events

            await link.kernel.commit_decided(build)

    async def _listen(self) -> None:
        while True:
            try:
                if await self.runs.wait(5.0):
                    self._wake.set()
            except Exception:  # LISTEN is only a wake-up; polling goes on without it
                await asyncio.sleep(1.0)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            with contextlib.suppress(Exception):
                await self.runs.heartbeat(self.id, self.lease)

    async def _stop_running(self) -> None:
        tasks = list(self.running.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Commit what the links hold, then close them and the connections."""
        for link in self.links.values():
            await link.close()
        if self._runs is not None:
            await self._runs.close()


class ShareRun:
    """Makes a ``Flock`` run on a shared log (``flock-es run --db postgresql://``):
    its events go through a ``RunLink``, and unless ``execute`` is False an
    embedded worker executes its tasks alongside any other workers.

    Example::

        flock.share = ShareRun(flock, url, execute=True, concurrency=16)
    """

    def __init__(self, flock: Flock, url: str, *, execute: bool, concurrency: int) -> None:
        self.worker = Worker(flock, url, concurrency=concurrency, only_run=flock.run_id)
        self.execute = execute
        self._stop = asyncio.Event()
        self._serving: asyncio.Task[None] | None = None

    async def open_sink(self) -> RunLink:
        await self.worker.connect()
        link = self.worker.link_for(self.worker.flock.run_id)
        await self.worker.runs.mark_shared(link.run_id)
        link.on_close = self._close
        return link

    def bind(self, engine: Engine) -> None:
        link = self.worker.links[engine.kernel.run_id]
        link.cursor = engine.state.last_seq  # a resumed or forked run starts folded
        link.bind(engine.kernel)
        engine.kernel.actor = SharedActor(link, self.worker.wake, engine.work)
        engine.executor.worker = self.worker.id
        self.worker.executors[link.run_id] = engine.executor
        self._serving = asyncio.create_task(
            self.worker.serve(self._stop, execute=self.execute), name="flock-es:worker"
        )

    async def _close(self) -> None:
        self._stop.set()
        if self._serving is not None:
            with contextlib.suppress(Exception):
                await self._serving
        await self.worker.close()


def _open(task: TaskView) -> bool:
    return task.status in (TaskStatus.SCHEDULED, TaskStatus.RUNNING)


async def run_claimed(executor: Executor, task_id: str) -> None:
    """Execute a task this worker holds the lease of, with the executor a local run
    uses. Its outcome is decided under the run's lock, caught up, and only if the
    task is still open: one whose lease was taken over and finished elsewhere
    meanwhile is not completed twice."""
    kernel = executor.kernel
    task = kernel.state.tasks[task_id]
    agent = executor.agents.get(task.agent)

    def fail(exc: Exception, t0: float | None) -> Callable[[], list[Event]]:
        def build() -> list[Event]:
            if not _open(kernel.state.tasks[task_id]):
                return []
            failed = [executor.failure(task, exc, t0)]
            kernel.apply(failed)
            return failed

        return build

    if agent is None:
        missing = LookupError(f"agent {task.agent!r} is not defined in this program")
        await kernel.commit_decided(fail(missing, None))
        return
    run = executor.start(task, agent)
    try:
        outputs = await executor.outputs(run)
    except FATAL:
        raise
    except Exception as exc:
        await kernel.commit_decided(fail(exc, run.t0))
        await executor.on_error(run, exc)
        return

    def complete() -> list[Event]:
        if not _open(kernel.state.tasks[task_id]):
            return []
        return executor.completion(run, outputs, False)

    await kernel.commit_decided(complete)
