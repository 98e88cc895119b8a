"""``flock-es worker``: execute the tasks of shared runs under leases.

A worker loads a program (for its agents' code) and serves every open shared
run of that program (same content hash) in a log, PostgreSQL or one SQLite
file (through the log's ``SharedRuns`` port, so this code is the same for
both). For each run it keeps a kernel whose state follows the log. In a loop
it catches up, arms the run's timers (batch timeouts, join windows,
releases: whichever worker's timer fires first records the outcome, under the
run's lock), and claims scheduled tasks up to ``concurrency``; each claimed
task runs through the same executor as a local run, and its outputs,
``task.completed`` and the decisions they cause commit in one transaction
under the run's lock, fenced by the task's lease.

How run ownership and task leases fit: the process that started or resumed
a shared run (``run``/``resume``) owns the *run* (its lease in ``owners``):
it publishes, waits, and records ``run.finished``, and its commits check that
lease. Workers own *tasks*: a task is executed only by the holder of its
lease, and its outcome commits only while that lease is still the holder's
(a taken-over lease makes the old holder drop its outcome). So one run has
one owner and many workers, and no task is executed twice while its lease is
held.

A heartbeat extends the worker's leases. When a worker dies its leases
expire and other workers take the tasks over (at once if it was on this
machine: its pid is gone); model calls it recorded are served from the
record, as ``resume`` does.

Example::

    worker = Worker(program.flock, "data/flock-es.db")  # or a postgresql:// URL
    await worker.serve(stop_event)
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flock_es.errors import UserError
from flock_es.log.lease import new_worker_id, worker_ended
from flock_es.log.ports import open_store
from flock_es.log.shared_ports import SharedRuns
from flock_es.models.limiter import seed_limits
from flock_es.projection.state import is_open
from flock_es.runtime.board_queries import BoardSource
from flock_es.runtime.claimed_task import run_claimed
from flock_es.runtime.executor import Executor
from flock_es.runtime.flock import Flock
from flock_es.runtime.resume import fold_for_work, program_hash
from flock_es.runtime.shared_run import RunLink, SharedActor
from flock_es.runtime.timers import Timers
from flock_es.runtime.work import Work

__all__ = ["LEASE_SECONDS", "Joined", "Worker", "worker_id"]

LEASE_SECONDS = 10.0
RUNS_EVERY = 0.5  # seconds between looks for new (or closed) runs of the program
COMMITTING_SLOTS = 4
"""Tasks a worker may hold, executing or committing their outcomes, per slot of its
``concurrency``: a task whose agent is done frees its slot while its outcome commits
(a round trip to the database), up to this many times the slots in all."""


@dataclass(frozen=True, slots=True)
class Joined:
    """A run a worker joined: its open tasks, and the events its fold read (past the
    run's latest snapshot) in how many seconds."""

    run_id: str
    open_tasks: int
    folded: int
    seconds: float


def worker_id() -> str:
    """``host:pid:n``: unique among live workers, shown per task in the TUI."""
    return new_worker_id()


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
        # Those of ``running`` whose agent is done and whose outcome is committing: they
        # hold their leases, not a slot (``_claim``).
        self.committing: set[tuple[str, str]] = set()
        self.executed = 0
        # The first error a task's execution ended with (not the task's own failure,
        # which its executor records): the loop stops on it (``serve`` raises it).
        self.failure: Exception | None = None
        # Outcomes dropped because another worker had taken the task's lease over.
        self.lost_leases = 0
        # (run, task) leases it could not give back (the database was gone): the next
        # worker of ``flock-es worker`` frees them (``cli.worker_loop``).
        self.unreleased: list[tuple[str, str]] = []
        self.timers: dict[str, Timers] = {}
        # run -> task -> when to offer it again (another worker held it when offered)
        self.elsewhere: dict[str, dict[str, float]] = {}
        self._runs_checked = 0.0
        self.work = Work()  # the timers' tasks
        self._runs: SharedRuns | None = None
        self._wake = asyncio.Event()
        # Told of each run this worker joins (``flock-es worker`` prints a line).
        self.on_join: Callable[[Joined], None] | None = None

    @property
    def runs(self) -> SharedRuns:
        assert self._runs is not None, "Worker.connect() first"
        return self._runs

    async def connect(self, runs: SharedRuns | None = None) -> None:
        self._runs = runs or await open_store(self.url).open_shared()

    def link_for(self, run_id: str) -> RunLink:
        """A link for a run this process publishes to (``flock-es run``); served too."""
        link = RunLink(self.runs, run_id, self._on_launch, self._holds(run_id), self.id)
        self.links[run_id] = link
        self.adopted.add(run_id)
        return link

    def _holds(self, run_id: str) -> Callable[[], list[str]]:
        return lambda: [t for r, t in self.running if r == run_id]

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
        if execute and self.only_run is None:
            self._prepare_models()
        helpers = [
            asyncio.create_task(self._heartbeat(), name="flock-es:heartbeat"),
            asyncio.create_task(self._listen(), name="flock-es:listen"),
        ]
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                if self.failure is not None:
                    raise self.failure
                self._wake.clear()
                await self.poll(execute)
                # A commit anywhere (NOTIFY), a task ending here, or 0.25 s: poll again.
                woke = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait([woke, stopped], timeout=0.25, return_when="FIRST_COMPLETED")
                woke.cancel()
        except Exception as exc:
            # Whoever waits for these runs here (``run``'s own wait, in this process) hears
            # it: with this loop gone nothing here executes their tasks, and a log that can
            # be read again (a server back after a failover) would have it wait forever.
            for link in self.links.values():
                link.failure = link.failure or exc
            raise
        finally:
            stopped.cancel()
            for h in helpers:
                h.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._stop_running()

    def _prepare_models(self) -> None:
        """Start litellm's import now if this worker's model (``--model``, else the
        program's) or an agent's own is a litellm one: it takes seconds, and would
        otherwise start only once the first run is joined. A check that fails here is
        reported when a run is joined (``_join``), whose recorded model may differ."""
        if self.model:
            self.flock.model = self.model
        with contextlib.suppress(UserError):
            self.flock.check_models()

    async def poll(self, execute: bool = True) -> None:
        """One round: join new runs, catch up, flush due batches, claim tasks."""
        if time.monotonic() - self._runs_checked > RUNS_EVERY:
            self._runs_checked = time.monotonic()
            if execute:
                await self._take_over_gone()
            if self.only_run is None:
                await self._follow_runs()
        for link in list(self.links.values()):
            if not link.bound:  # adopted, but its first publish has not started it
                continue
            # A commit on its way catches up anyway: waiting for it here held every
            # claim back until it ended (and each commit then carried one claim's tasks).
            await link.catch_up(unless_committing=True)
            self._arm_timers(link)
            if execute:
                await self._claim(link)

    async def _follow_runs(self) -> None:
        """Join the program's newly opened runs; close links to runs now closed."""
        open_runs = []
        for run_id, program, recorded in await self.runs.open_runs():
            if recorded == self.hash:
                open_runs.append(run_id)
            elif run_id not in self.skipped and _same_name(program, self.flock.program):
                # Another version of this file (edited here, or not yet deployed here):
                # say so once, instead of waiting silently for runs it never serves.
                self._skip(
                    run_id,
                    f"it runs another version of {Path(str(program)).name} (not this file's content)",
                )
        for run_id in open_runs:
            if run_id not in self.links and run_id not in self.skipped:
                await self._join(run_id)
        for run_id in [r for r in self.links if r not in open_runs and r not in self.adopted]:
            if not any(key[0] == run_id for key in self.running):
                await self.links.pop(run_id).close()
                self.elsewhere.pop(run_id, None)

    async def _take_over_gone(self) -> None:
        """Free the leases of dead workers of this machine: offered again now, not
        once the leases expire (other machines' workers are waited out)."""
        for run_id, task_id in await self.runs.drop_gone_leases():
            self.elsewhere.get(run_id, {}).pop(task_id, None)

    def _arm_timers(self, link: RunLink) -> None:
        """Arm what the run's state calls for (idempotent; pruned when done elsewhere)."""
        timers = self.timers.get(link.run_id)
        if timers is None:
            timers = self.timers[link.run_id] = Timers(link.kernel, self.work)
        timers.prune()
        timers.rearm()

    async def _join(self, run_id: str) -> None:
        link = RunLink(self.runs, run_id, self._on_launch, self._holds(run_id), self.id)
        # Compact, from the run's latest snapshot, on a thread (the loop goes on renewing
        # leases meanwhile): what the open work needs, not the run so far (issue 14).
        t0 = time.monotonic()
        state, folded = await asyncio.to_thread(fold_for_work, self.url, run_id)
        link.cursor = state.last_seq
        # The provider's limit as the run's other processes learned it, as a resume
        # starts from it: a worker that takes over a dead one's tasks (with room for 64
        # calls) sent them all at once against a provider allowing 8 (50 429s).
        seed_limits(state.limiters, time.time())
        # The run's recorded model, as resume does (one worker serves one program's runs).
        self.flock.model = self.model or state.model or self.flock.model
        try:
            self.flock.check_models()
        except UserError as exc:
            self._skip(run_id, str(exc))
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
        if self.on_join is not None:
            self.on_join(Joined(run_id, len(state.pending_tasks()), folded, time.monotonic() - t0))

    def _skip(self, run_id: str, why: str) -> None:
        self.skipped[run_id] = why
        sys.stderr.write(f"flock-es: warning: not serving run {run_id}: {why}\n")

    async def _claim(self, link: RunLink) -> None:
        """Claim up to the free slots in one round trip (once a quarter of them is free,
        so a busy worker does not pay a round trip per task), then catch up once:
        what a previous holder recorded (model calls) is in the state before any
        claimed task starts."""
        executing = len(self.running) - len(self.committing)
        free = min(
            self.concurrency - executing,
            # Outcomes still committing hold leases (and outputs): a bound on them too.
            COMMITTING_SLOTS * self.concurrency - len(self.running),
        )
        if free <= 0 or (executing and free < max(1, self.concurrency // 4)):
            return
        run_id = link.run_id
        now = time.monotonic()
        # Tasks another worker held when last offered are offered again a third of a
        # lease later (its holder renews that often): each claim offers a few
        # candidates, not all, and a dead holder's tasks are taken over at most a
        # third of a lease after its leases expire (not up to a whole lease more).
        elsewhere = self.elsewhere.setdefault(run_id, {})
        if len(elsewhere) > 4 * self.concurrency:
            # Those due again are clutter: over a long run, every task another worker
            # took before this one offered it piled up here.
            for tid in [tid for tid, due in elsewhere.items() if due <= now]:
                del elsewhere[tid]
        offer: list[str] = []
        for t in link.kernel.state.iter_pending():
            if (run_id, t.id) in self.running or elsewhere.get(t.id, 0.0) > now:
                continue
            offer.append(t.id)
            if len(offer) >= free * 2:
                break
        got = await self.runs.claim_tasks(run_id, offer, self.id, self.lease, free)
        if len(got) < free:  # then every candidate not got is held by another worker
            taken = set(got)
            elsewhere.update((t, now + self.lease / 3) for t in offer if t not in taken)
        if not got:
            return
        await link.catch_up()
        for task_id in got:
            elsewhere.pop(task_id, None)
            task = asyncio.create_task(self._execute(link, task_id), name=f"flock-es:{task_id}")
            self.running[(run_id, task_id)] = task

    def _ran(self, key: tuple[str, str]) -> None:
        """The task's agent is done, its outcome committing: its slot is free."""
        self.committing.add(key)
        self._wake.set()

    async def _execute(self, link: RunLink, task_id: str) -> None:
        ended = False
        key = (link.run_id, task_id)
        try:
            # A compact state forgets a completed task: one missing here is done.
            if is_open(link.kernel.state.tasks.get(task_id)):
                await run_claimed(
                    self.executors[link.run_id], task_id, link.lost, lambda: self._ran(key)
                )
                self.executed += 1
                if task_id in link.lost:
                    self.lost_leases += 1
                    sys.stderr.write(
                        f"flock-es: worker {self.id}: the lease on task {task_id} was taken "
                        "over by another worker; its outcome here was dropped\n"
                    )
            # Only a commit of this link's that ended the task dropped its lease. A task
            # claimed from a stale view (another process ended it since) is skipped, and
            # its lease given back: kept, the heartbeat renewed it for good, and a
            # ``resume --retry-failed`` that reopened the task waited on it forever.
            ended = task_id in link.ended
        except Exception as exc:  # a commit that failed (the database went away), ...
            # ... raised here, in a task nobody awaits: handed to the loop (which stops
            # on it and tells the runs), not left for the garbage collector to print.
            self.failure = self.failure or exc
        finally:
            self.running.pop(key, None)
            self.committing.discard(key)
            link.let_go(task_id)
            if not ended:  # else the commit that ended it dropped the lease already
                try:
                    await self.runs.release_tasks(link.run_id, self.id, [task_id])
                except Exception:
                    self.unreleased.append((link.run_id, task_id))
            self._wake.set()

    async def _listen(self) -> None:
        while True:
            try:
                if not self.links:
                    # No run joined: a commit would wake nothing that matters, as runs
                    # are looked for every RUNS_EVERY anyway (and watching a SQLite file
                    # costs an idle worker some 3% of a core: ``sqlite_watch``).
                    await asyncio.sleep(RUNS_EVERY)
                    continue
                if await self.runs.wait(5.0):
                    self._wake.set()
            except Exception:  # LISTEN is only a wake-up; polling goes on without it
                await asyncio.sleep(1.0)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            with contextlib.suppress(Exception):
                await self.runs.renew_tasks(self.id, self.lease)

    async def _stop_running(self) -> None:
        await self.work.cancel_all()
        tasks = list(self.running.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Commit what the links hold, then close them and the connections."""
        try:
            for link in self.links.values():
                await link.close()
            if self._runs is not None:
                await self._runs.close()
        finally:  # also when its database is gone: its leases are then a gone worker's
            worker_ended(self.id)


def _same_name(recorded: str | None, mine: Path | None) -> bool:
    return bool(recorded) and mine is not None and Path(str(recorded)).name == mine.name
