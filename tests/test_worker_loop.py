"""``flock-es worker``'s policy on a lost database (``flock_es.cli.worker_loop``).

The processes, the servers and the disks are real in tests/test_pg_cli.py and
tests/test_faults.py; here stand-in workers fail on cue, so each rule is checked
in milliseconds: which errors are retried, which lines are said, when it gives up.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest

from flock_es.cli import worker_loop
from flock_es.cli.worker_loop import lost_database, serve_worker
from flock_es.errors import CommitFailed, DatabaseDamagedError, DatabaseError, DiskFullError

GONE = DatabaseError("cannot write to postgresql://db/x: server closed the connection")


def test_which_errors_are_a_lost_database() -> None:
    assert lost_database(GONE) is GONE
    full = DiskFullError("x.db", "database or disk is full")
    assert lost_database(full) is full
    try:
        raise CommitFailed("a commit failed") from GONE
    except CommitFailed as exc:
        assert lost_database(exc) is GONE  # through the cause
    assert lost_database(DatabaseDamagedError("x.db is damaged")) is None
    assert lost_database(ValueError("a bug")) is None


class _Runs:
    def __init__(self, freed: list[tuple[str, str, list[str]]]) -> None:
        self.freed = freed

    async def release_tasks(self, run_id: str, worker: str, task_ids: list[str]) -> None:
        self.freed.append((run_id, worker, task_ids))


class _Worker:
    """Connects, or not; serves, failing or returning as told (having executed
    ``executed`` tasks)."""

    def __init__(
        self,
        n: int,
        connect: Exception | None,
        serve: Exception | None,
        executed: int = 0,
        serves_for: float = 0.0,
    ) -> None:
        self.id = f"w{n}"
        self.executed = executed
        self.serves_for = serves_for
        self.unreleased = [("run", f"t{n}")] if serve else []
        self._connect, self._serve = connect, serve
        self.runs: Any = None
        self.closed = False
        self.cancelled = False

    async def connect(self) -> None:
        if self._connect:
            raise self._connect
        self.runs = _Runs(FREED)

    async def serve(self, stop: asyncio.Event) -> None:
        try:
            await asyncio.sleep(self.serves_for)  # deaf to ``stop``, as on a stuck pool
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self._serve:
            raise self._serve

    async def close(self) -> None:
        self.closed = True


FREED: list[tuple[str, str, list[str]]] = []


def _workers(*plan: tuple[Any, ...]) -> Callable[[], Any]:
    made = iter(range(len(plan)))

    def make() -> _Worker:
        n = next(made)
        return _Worker(n, *plan[n])

    return make


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_loop, "RETRY_FIRST", 0.01)
    monkeypatch.setattr(worker_loop, "RETRY_MAX", 0.02)
    FREED.clear()


def test_a_lost_database_is_one_line_and_the_next_worker_serves(
    capsys: pytest.CaptureFixture[str],
) -> None:
    make = _workers((None, GONE, 3), (GONE, None), (GONE, None), (None, None, 5))
    served = asyncio.run(serve_worker(make, "postgresql://db/x", 60, "serving p.py"))
    out, err = capsys.readouterr()
    assert served.executed == 8 and served.reconnects == 1 and served.last == "w3"
    assert out.splitlines()[0] == "worker w0 serving p.py"
    assert "worker w3 connected again to postgresql://db/x after " in out
    assert err.splitlines() == [
        f"flock-es: worker w0 lost the database: {GONE}; connecting again for up to 60 s"
    ]
    assert FREED == [("run", "w0", ["t0"])]  # the lease w0 could not give back


def test_a_worker_that_cannot_connect_at_first_stops_at_once() -> None:
    with pytest.raises(DatabaseError) as caught:
        asyncio.run(serve_worker(_workers((GONE, None)), "x.db", 60))
    assert caught.value is GONE


def test_errors_not_of_the_database_and_damaged_files_are_not_retried() -> None:
    for failure in (ValueError("a bug"), DatabaseDamagedError("x.db is damaged")):
        with pytest.raises(type(failure)):
            asyncio.run(serve_worker(_workers((None, failure)), "x.db", 60))


def test_reconnect_for_zero_stops_on_the_first_loss() -> None:
    with pytest.raises(DatabaseError) as caught:
        asyncio.run(serve_worker(_workers((None, GONE)), "x.db", 0))
    assert caught.value is GONE


def test_an_outage_that_outlasts_reconnect_for_stops_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Connected each time, failing at once (a disk still full): one outage, one line,
    then the error that ends the worker says how long it tried."""
    full = DiskFullError("x.db", "database or disk is full")
    plan = [(None, full)] * 200
    with pytest.raises(DatabaseError, match=r"no connection that lasted for \d+ s"):
        asyncio.run(serve_worker(_workers(*plan), "x.db", 0.3))
    out, err = capsys.readouterr()
    assert len(err.splitlines()) == 1 and "lost the database: the disk holding" in err
    assert out.count("connected again") == 1, out


def test_a_second_loss_after_the_worker_worked_again_is_said_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two failovers: between them the worker executed tasks (the database was back),
    so the second is an outage of its own, said as the first was."""
    make = _workers((None, GONE, 3), (None, GONE, 1), (None, None))
    served = asyncio.run(serve_worker(make, "x.db", 60))
    out, err = capsys.readouterr()
    assert served.reconnects == 2 and out.count("connected again") == 2, out
    assert [line.split(" lost ")[0] for line in err.splitlines()] == [
        "flock-es: worker w0",
        "flock-es: worker w1",
    ]


def test_workers_that_cannot_connect_are_one_outage_however_long_the_last_served(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lost worker served longer than ``STEADY``; the next ones cannot connect:
    one outage, one line (they are not new outages of their own)."""
    monkeypatch.setattr(worker_loop, "STEADY", 0.05)
    make = _workers((None, GONE, 0, 0.1), (GONE, None), (GONE, None), (None, None))
    served = asyncio.run(serve_worker(make, "x.db", 60))
    _, err = capsys.readouterr()
    assert served.reconnects == 1 and len(err.splitlines()) == 1, err


def test_a_stop_while_serve_is_stuck_on_the_database_cancels_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGTERM while the worker waits on a database that does not answer (its serve
    hears nothing for the pool's 10 s): after ``CLOSE_WAIT`` it is cancelled and closed,
    and the worker stops as asked (the per-test timeout is the guard against a hang)."""
    monkeypatch.setattr(worker_loop, "CLOSE_WAIT", 0.05)
    made: list[_Worker] = []

    def make() -> Any:  # a stand-in for a Worker
        made.append(_Worker(0, None, None, serves_for=3600))
        return made[-1]

    async def main() -> worker_loop.Served:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
        return await serve_worker(make, "x.db", 60)

    served = asyncio.run(main())
    assert served.last == "w0" and made[0].cancelled and made[0].closed
