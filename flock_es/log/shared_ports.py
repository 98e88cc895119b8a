"""The ports of a log that many processes share (``flock-es worker``).

``SharedRuns`` is what a backend gives the processes executing the runs of one
log: shared runs, task leases, serialised per-run commits and wake-ups;
``RunTurn`` is one participant's turn at a run's commit. SQLite
(``flock_es.log.sqlite_runs``) and PostgreSQL (``flock_es.log.pg_runs``)
implement them, and ``EventStore.open_shared`` (``flock_es.log.ports``) opens
one; ``tests/log_contract.py`` holds both to the same contract.

Example::

    runs = await store.open_shared()
    got = await runs.claim_tasks("r-1", ["t-1", "t-2"], "host:123:0", 10.0, 8)
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from flock_es.domain.events import Event
from flock_es.log.ports import Lease

__all__ = ["RunTurn", "SharedRuns"]


class RunTurn(Protocol):
    """One participant's turn at a shared run: what ``SharedRuns.commit_turn`` calls
    inside the transaction that holds the run's lock (``RunLink`` is the one)."""

    cursor: int
    """The last seq of the run this participant has applied."""
    worker: str | None
    """The worker id its task leases carry (None: it holds none)."""
    fence: Lease | None
    """The run lease the commit must still hold (the run's coordinator), or None."""

    def held(self) -> list[str]:
        """Tasks whose leases this commit relies on (the ones it is executing)."""
        ...

    def catch_up(self, events: list[Event], lost: set[str]) -> None:
        """Apply what others committed since ``cursor``; ``lost``: held leases that
        another worker has taken over (their outcomes must not be committed)."""
        ...

    def build(self) -> list[Event]:
        """The events to commit, decided on the caught-up state."""
        ...

    def ended(self, events: list[Event]) -> list[str]:
        """The tasks whose leases to drop with this commit (those it finished)."""
        ...


@runtime_checkable
class SharedRuns(Protocol):
    """Coordination of many processes executing the runs of one log (``flock-es
    worker``): shared runs, task leases, serialised per-run commits, wake-ups.

    - ``claim_tasks`` is atomic: a task has at most one live lease holder; an
      expired lease is taken over (the log's clock decides expiry), and
      ``drop_gone_leases`` frees at once those of a dead worker of this machine.
    - ``commit_turn`` serialises the commits of one run (an advisory lock on
      PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite): the turn catches up, learns
      which of its held leases were taken over, builds, appends and drops the
      leases of the tasks it ended, in one transaction. With ``turn.fence`` set
      it raises ``RunOwnedError`` (committing nothing) unless the run lease is
      still held.

    Example::

        runs = await store.open_shared()
        got = await runs.claim_tasks("r-1", ["t-1", "t-2"], "host:123:0", 10.0, 8)
    """

    location: str

    async def mark_shared(self, run_id: str) -> None:
        """Open ``run_id`` to workers (a run driven by one process alone is not)."""
        ...

    async def is_shared(self, run_id: str) -> bool: ...
    async def open_runs(self) -> list[tuple[str, str | None, str | None]]:
        """Shared runs still running, in start order: (run id, program, program hash)
        as their ``run.started`` recorded them."""
        ...

    async def events_after(self, run_id: str, cursor: int) -> list[Event]: ...
    async def commit_turn(self, run_id: str, turn: RunTurn) -> list[Event]:
        """One serialised transaction of ``run_id`` (see the class); the events committed."""
        ...

    async def claim_tasks(
        self, run_id: str, candidates: list[str], worker: str, lease: float, limit: int
    ) -> list[str]:
        """Up to ``limit`` of ``candidates`` (in order) that ``worker`` now holds."""
        ...

    async def renew_tasks(self, worker: str, lease: float) -> int:
        """Extend every lease ``worker`` holds; how many it still holds."""
        ...

    async def release_tasks(self, run_id: str, worker: str, task_ids: list[str]) -> None: ...
    async def drop_gone_leases(self) -> list[tuple[str, str]]:
        """Delete the task leases of workers of this machine whose process is gone
        (``lease.gone_workers``), so their tasks are taken over at once instead of
        when the leases expire; the (run id, task id) pairs freed."""
        ...

    async def task_holders(self, run_id: str) -> dict[str, str]:
        """Live (unexpired) task leases of ``run_id``: task id -> worker id."""
        ...

    async def wait(self, timeout: float) -> bool:
        """Sleep until another process commits (or ``timeout``); True when woken."""
        ...

    async def close(self) -> None: ...
