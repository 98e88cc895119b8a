"""``flock-es worker`` as a service: it rides out a lost database instead of stopping.

A worker whose server ends its connections (a failover, a restart) or goes away,
or whose disk fills, cannot go on with the state it holds: after a failed commit
its kernel may be ahead of the log. So it does what a fresh worker does. It drops
that state and its in-flight tasks, and connects again, first after 0.5 s, then
twice as long each time (at most 10 s). Once connected, a new worker joins the
open runs from the log and serves them. It frees the leases the lost one could not
give back, so other workers need not wait for them to expire. Its model calls that
were answered but not recorded are lost with it, and run again.

It says so in one line when it loses the database, and in one when it is connected
again. While the outage lasts (no connection, or none that executes a task or lasts
``STEADY`` seconds: a full disk), a line at most every 30 s. After ``reconnect_for``
seconds of it, the worker stops with one line and exit status 2. A worker that
cannot connect when it starts stops at once: a mistyped URL is one line, not a long
wait. A damaged file is not retried, and neither is any error that is not the
database's.

Example::

    served = asyncio.run(serve_worker(make_worker, "postgresql://db/flock", 300.0))
    print(served.executed)
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import typer

from flock_es.errors import DatabaseError, database_may_come_back

TYPE_CHECKING = False
if TYPE_CHECKING:
    from flock_es.runtime.worker import Worker

__all__ = [
    "CLOSE_WAIT",
    "RETRY_FIRST",
    "RETRY_MAX",
    "SAY_EVERY",
    "STEADY",
    "Outage",
    "Served",
    "lost_database",
    "serve_worker",
]

RETRY_FIRST = 0.5
"""Seconds before the first attempt to connect again; each next one waits twice as long."""
RETRY_MAX = 10.0
"""The longest wait between two attempts."""
SAY_EVERY = 30.0
"""Seconds between two lines about one outage, after its first."""
CLOSE_WAIT = 2.0
"""Seconds a lost worker may take to close; what it could not commit is lost with it."""
STEADY = 10.0
"""Seconds after which a worker's failure is a new outage, though it executed no task."""


@dataclass
class Served:
    """What the workers of one ``flock-es worker`` did: tasks executed, and how often
    the database was lost and found again."""

    executed: int = 0
    reconnects: int = 0
    last: str = ""  # the id of the last worker


def lost_database(exc: BaseException) -> DatabaseError | None:
    """The database error ``exc`` is, or was raised for, if the database may come back
    (a connection, a server, a full disk); None for a damaged file or anything else."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DatabaseError):
            return seen if database_may_come_back(seen) else None
        seen = seen.__cause__ or seen.__context__
    return None


async def serve_worker(
    make: Callable[[], Worker], where: str, reconnect_for: float, serving: str = ""
) -> Served:
    """Serve with workers from ``make()`` until SIGINT or SIGTERM; a lost database (see
    the module docstring) ends one worker and, once it can be reached, starts the next.
    The first says ``worker ID {serving}`` once connected."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    served = Served()
    lost = Outage(reconnect_for, _worker_gave_up)
    unreleased: list[tuple[str, str, str]] = []
    connected = 0.0  # when the last worker connected; 0: none ever did
    while not stop.is_set():
        w = make()
        served.last = w.id
        up = False  # this worker connected
        try:
            await w.connect()
            up = True
            if not connected:
                typer.echo(f"worker {w.id} {serving or f'serving on {where}'}")
            else:
                _found(lost, w.id, where)
                served.reconnects += 1
            connected = time.monotonic()
            await _release(w, unreleased)
            if not await _serve(w, stop):
                await _close_quietly(w, served, unreleased)
                return served
        except Exception as exc:
            cause = lost_database(exc)
            await _close_quietly(w, served, unreleased)
            if cause is None or not connected:  # not connected: it never could
                raise
            # Raises once the outage is over. A worker that executed a task, or served a
            # while, had the database back: its loss is a new outage.
            steady = up and (w.executed > 0 or time.monotonic() - connected >= STEADY)
            if reconnect_for <= 0:  # told not to wait: the error as it came (it may be exc)
                raise cause  # noqa: B904
            lost.lost(f"worker {w.id}", str(cause), steady)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), lost.delay())
            continue
        served.executed += w.executed
        await w.close()
        return served
    return served


async def _serve(w: Worker, stop: asyncio.Event) -> bool:
    """``w.serve(stop)``; False if it had to be cancelled: a stop asked for while it
    waited on a database that does not answer (a pool's wait for a connection lasts
    10 s), for ``CLOSE_WAIT`` seconds more."""
    serving = asyncio.ensure_future(w.serve(stop))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not serving.done():  # it ends at its next look, unless stuck on the database
            await asyncio.wait({serving}, timeout=CLOSE_WAIT)
        if not serving.done():
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
            return False
        serving.result()
        return True
    finally:
        stopped.cancel()


async def _close_quietly(w: Worker, served: Served, unreleased: list[tuple[str, str, str]]) -> None:
    """Close a worker whose database failed: what it cannot commit or give back is lost
    with it (its leases are noted, for the next worker to free)."""
    # Bounded: with the server gone, committing what a link still holds waits for the
    # pool's connect timeout (10 s), and a Ctrl-C meanwhile was not heard until then.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(w.close(), CLOSE_WAIT)
    served.executed += w.executed
    unreleased += [(w.id, run, task) for run, task in w.unreleased]


async def _release(w: Worker, unreleased: list[tuple[str, str, str]]) -> None:
    """Free the leases that lost workers of this process could not give back."""
    by_owner: dict[tuple[str, str], list[str]] = {}
    for owner, run, task in unreleased:
        by_owner.setdefault((owner, run), []).append(task)
    for (owner, run), tasks in by_owner.items():
        await w.runs.release_tasks(run, owner, tasks)
    unreleased.clear()


class Outage:
    """One outage of the database: since when, the next wait, and the lines about it,
    for a worker (``serve_worker``) or a run that goes on by itself (``cli.run_outage``).

    A worker that fails before it executed a task and within ``STEADY`` seconds of
    connecting is part of the same outage (a SQLite disk still full: reads work,
    commits fail): its failure adds no line of its own, and the outage goes on
    counting towards ``reconnect_for``. Lines after the first come at most every
    ``SAY_EVERY`` seconds. ``purpose`` ends the first line; ``gave_up(reason, seconds)``
    is the error once the outage lasted ``reconnect_for``."""

    def __init__(
        self,
        reconnect_for: float,
        gave_up: Callable[[str, float], str],
        purpose: str = "",
    ) -> None:
        self.reconnect_for = reconnect_for
        self.gave_up = gave_up
        self.purpose = purpose
        self.since: float | None = None
        self.said = 0.0
        self.wait = RETRY_FIRST
        self.reconnected = False  # connected again in this outage

    def lost(self, who: str, reason: str, steady: bool) -> None:
        """Say ``who``'s loss (raise ``gave_up`` once it lasted ``reconnect_for``);
        ``steady``: what failed had worked, so this is a new outage."""
        now = time.monotonic()
        if self.since is None or steady:
            self.since, self.said, self.wait, self.reconnected = now, now, RETRY_FIRST, False
            _say(
                f"{who} lost the database: {reason}; "
                f"connecting again for up to {self.reconnect_for:g} s{self.purpose}"
            )
            return
        out = now - self.since
        if out >= self.reconnect_for:
            raise DatabaseError(self.gave_up(reason, out)) from None
        if now - self.said >= SAY_EVERY:
            self.said = now
            _say(f"{who}: the database still fails after {out:.0f} s: {reason}")

    def delay(self) -> float:
        """Seconds to the next attempt (the last one at ``reconnect_for``)."""
        wait, self.wait = self.wait, min(self.wait * 2, RETRY_MAX)
        assert self.since is not None
        left = self.reconnect_for - (time.monotonic() - self.since)
        return max(min(wait, left), 0.0)


def _worker_gave_up(reason: str, out: float) -> str:
    return (
        f"{reason} (no connection that lasted for {out:.0f} s; the worker stopped: "
        "start one again once the database is back)"
    )


def _found(lost: Outage, worker: str, where: str) -> None:
    """A worker connected: said for the first in an outage, then as lines may come."""
    assert lost.since is not None
    now = time.monotonic()
    if lost.reconnected and now - lost.said < SAY_EVERY:
        return
    lost.reconnected, lost.said = True, now
    typer.echo(
        f"worker {worker} connected again to {where} after "
        f"{now - lost.since:.1f} s; joining the open runs"
    )


def _say(line: str) -> None:
    typer.echo(f"flock-es: {line}", err=True)
