"""A run on PostgreSQL rides out a lost database once ``main()`` has published its seeds.

``flock-es run`` (executing its tasks) and ``flock-es resume`` on PostgreSQL: when
the server ends the run's connections (a failover, a restart) or goes away, the run
stops as before (``runtime.lifecycle.drive``: its tasks in flight are dropped, the
shared run is left open for its workers). Then, instead of asking the user to type
``flock-es resume RUN``, this process does it: it says so in one line, connects
again after 0.5 s, then twice as long each time (at most 10 s apart), and once it
can, resumes the run in this process (``cli.resume_run``), as that command would:
recorded answers served from the log, never paid twice, and the calls that were in
flight made again.

Not when ``main()`` was still publishing: the seeds it had yet to publish cannot be
recovered by a resume, so the run stops with the line that says so. Nor after
``--reconnect-for`` seconds of outage (default 300; 0: stop at once), when it stops
with the line that says how to resume it. A resume that ran ``STEADY`` seconds before
it lost the database again starts a new outage; one that failed sooner (the server
is not back yet, or back and gone again) is the same outage. Ctrl-C or SIGTERM while
it waits stops it (one line, exit 130); the run stays resumable.

Example::

    done = ride_out(first, again, "r-1", "postgresql://db/flock", 300.0)
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer

from flock_es.cli.resume_run import Claim, ResumeOptions, resume_run
from flock_es.cli.run_driver import Ended
from flock_es.cli.worker_loop import STEADY, Outage
from flock_es.errors import DatabaseError, ExitCode, RunLostDatabase, database_may_come_back
from flock_es.log.backends import DbRef, describe_db

__all__ = ["go_on", "ride_out"]

T = TypeVar("T")


def go_on(
    db: DbRef,
    run_id: str,
    claim: Claim,
    options: ResumeOptions,
    first: Callable[[], Ended],
    reconnect_for: float,
) -> Ended:
    """``first()``, resumed in this process after a lost database (``ride_out``);
    None if there was nothing left to resume (said)."""

    def again(found: Callable[[], None]) -> Ended:
        done = resume_run(db, run_id, claim, options, ours=True, claimed=found)
        return None if done is None else (done.flock, done.status)

    return ride_out(first, again, run_id, describe_db(db), reconnect_for)


def ride_out(
    first: Callable[[], T],
    again: Callable[[Callable[[], None]], T],
    run_id: str,
    where: str,
    reconnect_for: float,
) -> T:
    """``first()``; once it loses the database after seeding, ``again(found)`` until
    one ends (``found`` is called once it has the run claimed and folded)."""
    outage = _Outage(run_id, where, reconnect_for)
    try:
        return first()
    except RunLostDatabase as exc:
        if exc.seeding or reconnect_for <= 0:
            raise
        lost = exc.reason
    try:
        with _term_interrupts():  # from before the line: a stop that follows it is heard
            outage.lost(outage.who, lost, steady=False)
            return _go_on(again, outage)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM between two attempts, or in one's start
        _say(
            f"run {run_id} stopped while it waited for the database: once it is back, "
            f"`flock-es resume {run_id}` finishes it"
        )
        raise typer.Exit(ExitCode.INTERRUPTED) from None


def _go_on(again: Callable[[Callable[[], None]], T], outage: _Outage) -> T:
    """Attempts of ``again`` after ``outage``'s waits, until one ends or it lasted too long."""
    while True:
        outage.sleep()
        began = time.monotonic()
        try:
            with _term_interrupts():  # connecting may wait (a server that does not answer)
                return again(outage.found)
        except RunLostDatabase as exc:  # lost again: a new outage if it went on a while
            outage.lost(outage.who, exc.reason, steady=time.monotonic() - began >= STEADY)
        except DatabaseError as exc:  # connecting again failed: the server is not back
            if not database_may_come_back(exc):
                raise
            outage.lost(outage.who, str(exc), steady=False)


class _Outage(Outage):
    """The run's outage: its lines name the run and the resume that finishes it."""

    def __init__(self, run_id: str, where: str, reconnect_for: float) -> None:
        def gave_up(reason: str, out: float) -> str:
            return (
                f"{reason} (no connection for {out:.0f} s); run {run_id} stopped: once the "
                f"database is back, `flock-es resume {run_id}` finishes it"
            )

        super().__init__(reconnect_for, gave_up, purpose=" to go on")
        self.who = f"run {run_id}"
        self.where = where

    def sleep(self) -> None:
        """Sleep to the next attempt; SIGTERM, as Ctrl-C, ends the wait as an interrupt."""
        pause = self.delay()
        with _term_interrupts():
            time.sleep(pause)

    def found(self) -> None:
        """Said on stderr, as the loss: stdout is the program's."""
        assert self.since is not None
        _say(
            f"{self.who} connected again to {self.where} after "
            f"{time.monotonic() - self.since:.1f} s; resuming it"
        )


@contextmanager
def _term_interrupts() -> Iterator[None]:
    """SIGTERM raises ``KeyboardInterrupt`` meanwhile, as SIGINT does: one line, exit 130."""

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _say(line: str) -> None:
    typer.echo(f"flock-es: {line}", err=True)
