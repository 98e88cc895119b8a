"""One snapshot of a run, taken by a separate process: ``python -m flock_es.log.snapshot_job DB RUN [N]``.

A live run cannot snapshot its own state: the kernel folds events when they are
decided, before they commit (their seqs are not known yet), so that state is not
the fold of any prefix of the log. This job folds the run compactly from its
latest link (``flock_es.projection.snapshot_links``) up to what is committed when
it starts (in pages) and stores the next link, at low priority, in its own
process: the run's threads do not wait for it and its interpreter does not carry
the work. A job that fails or is stopped leaves nothing harmful behind (each link
is one insert, and each stored link is whole); readers fold from the log as they
would without it. A job whose run is gone (killed with SIGKILL,
so it could not stop the job) stops too: on Linux the kernel sends it SIGTERM
when its parent dies (``PR_SET_PDEATHSIG``); elsewhere a thread watches the
parent's pid once a second.

A live run starts one job and keeps it (``--serve``): it asks for each checkpoint
with a line on the job's standard input, and the job goes on folding from where
the last one left off (``serve``); the end of that input (the run closed it, or
died) ends the job.

Example::

    subprocess.Popen([sys.executable, "-m", "flock_es.log.snapshot_job", "data/flock-es.db", run])
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from flock_es.errors import DatabaseError
from flock_es.log.backends import parse_db
from flock_es.log.idle import IdleWorker
from flock_es.log.ports import EventRow, EventStore, open_store
from flock_es.log.reader import row_to_event
from flock_es.log.snapshots import start_state
from flock_es.projection.snapshot import SNAPSHOT_EVERY, collector_paused
from flock_es.projection.snapshot_links import LinkFold, Parked

__all__ = [
    "DB_ENV",
    "DB_FROM_ENV",
    "NICENESS",
    "PARENT_ENV",
    "SERVE",
    "lower_priority",
    "main",
    "serve",
    "snapshot_now",
    "stop_with_parent",
]

DB_ENV = "FLOCK_ES_SNAPSHOT_JOB_DB"
DB_FROM_ENV = "-"
"""``DB`` given as ``-``: the database is in ``$FLOCK_ES_SNAPSHOT_JOB_DB``. A run hands
its database this way, so a PostgreSQL URL with a password never shows in the job's
command line, which every user of the machine can read (``ps``)."""

SERVE = "--serve"
"""``DB RUN [N] --serve``: the job of a live run, which checkpoints each time a line comes on
its standard input, until that ends (``serve``)."""

PARENT_ENV = "FLOCK_ES_SNAPSHOT_JOB_PARENT"
"""The pid of the run that started the job: the job stops once that process is gone."""

NICENESS = 19
"""The lowest priority of the normal policy: the job runs behind the run it checkpoints
(and anything else on the machine), on what CPU they leave (``lower_priority``)."""
PAGE = 1_000
"""Events read per query (per read transaction, which pins the run's WAL: see
``lower_priority``). Some 2-3 ms of SQLite's work; smaller pages cost the job nothing
measurable (5,000 took as many instructions, in transactions five times as long)."""
_PR_SET_PDEATHSIG = 1
_POLL_S = 1.0


def lower_priority(pid: int = 0) -> None:
    """Run process ``pid`` (0: this one) at ``NICENESS``; nothing where it cannot.

    A run calls it on its job as soon as it is started, so the job's start-up
    (interpreter and imports: a quarter of the CPU of a job folding 20,000 events)
    already runs behind the run's threads; the job calls it too, for a job started by
    hand. (On Linux this sets the job's main thread, which threads it starts inherit.)

    Niceness, not ``SCHED_IDLE``, though an idle-policy job costs the run less still
    (a waking run thread preempts it at once: workload (b) ran some 8% faster on 2
    cores). The job holds locks the run needs, and on a machine saturated by other
    work an idle-policy job gets almost no CPU to finish with them: a weight of 3
    against 1,024 for each busy thread at nice 0 (15 at nice 19). ``save_snapshot``
    holds SQLite's write lock for some 15 ms of CPU (a 1.6 MB link), and the run's
    writer waits at most ``BUSY_TIMEOUT_MS`` (10 s) for it before its commit fails:
    behind two busy threads on its core, an idle-policy job would hold the lock about
    10 s, a job at nice 19 about 2 s. Each page the job reads is a read transaction
    (some 2-3 ms of SQLite's work for ``PAGE`` events: they are decoded after it),
    during which the run's writer cannot restart its WAL, which grows by everything
    the run commits meanwhile. The cost of the choice: on a saturated machine the
    job mostly waits, and a busy run's snapshots fall behind until CPU frees up.

    Only the job's own thread runs at this niceness: the decoding and folding of its
    pages, most of its CPU and no lock, runs in an ``IdleWorker`` (``flock_es.log.idle``)
    under ``SCHED_IDLE`` after all, which a waking run thread preempts at once.
    """
    with contextlib.suppress(OSError, AttributeError):  # gone already; or not POSIX
        os.setpriority(os.PRIO_PROCESS, pid, NICENESS)


def stop_with_parent(parent: int) -> bool:
    """Make this process end when ``parent`` (its parent) ends; False if it already has.

    A run killed with SIGKILL cannot stop its job, which would fold on (minutes at
    scale, on a machine the crash may have left busy) and store a snapshot nobody
    waits for. On Linux the kernel signals the job at its parent's death (strictly,
    the death of the parent's thread that started it: a run's loop thread, which
    lives as long as the run); the parent check after asking closes the race of a
    parent that died before.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols: libc's
            if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0:
                return os.getppid() == parent
    if os.getppid() != parent:
        return False
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    return True


def _watch_parent(parent: int) -> None:
    """Where the kernel cannot signal it: poll, and exit once reparented."""
    while os.getppid() == parent:
        time.sleep(_POLL_S)
    os._exit(3)


def snapshot_now(
    db: str, run_id: str, at_least: int = SNAPSHOT_EVERY, checked: bool = False, idle: bool = False
) -> bool:
    """Fold ``run_id`` of ``db`` as committed so far and store its snapshot; returns
    whether one was stored (not when fewer than ``at_least`` events were folded past
    the last). ``checked``: the job of a live run, which checked the file when it
    opened its writer and appends to it all along: the job does not check it again
    (``open_store``). Each check is bounded in time, not in work, so a run's jobs
    each spent up to a second and a half of CPU on it (some 5 s of the 22 s the jobs
    of a 100,000-artifact run took), reading the whole file beside the run.

    The fold is compact and goes on from the latest link's compact state (a chain
    whose every link is stored; else from event 0): what it lets go of streams into
    the next link's segment (``LinkFold``), stored as a link of its own whenever it
    reaches ``SEGMENT_BYTES``, so the job's memory is the compact state's, not the
    run's whole state.

    ``idle``: the pages are folded in a thread under ``SCHED_IDLE`` (``IdleWorker``), on
    CPU nothing else wants; reading them and storing the links stay on this thread."""
    if not idle:
        return _snapshot(db, run_id, at_least, checked, _call)
    with IdleWorker() as worker:
        return _snapshot(db, run_id, at_least, checked, worker.call)


def _call(fn: Callable[..., None], *args: Any) -> None:
    fn(*args)


def _fold_page(links: LinkFold, rows: list[EventRow]) -> None:
    """Decode and fold a page of rows (the idle thread's part of the job)."""
    for row in rows:
        try:
            e = row_to_event(row)
        except ValueError:  # as the reader says of a body that is not JSON
            raise DatabaseError(f"the body of event {row[0]} is not JSON") from None
        if e is not None:
            links.apply(e)


def _snapshot(
    db: str, run_id: str, at_least: int, checked: bool, fold: Callable[..., None]
) -> bool:
    with _Chain(db, run_id, checked) as chain:
        return chain.checkpoint(at_least, fold)


class _Chain:
    """A run's compact fold and the links it stores, kept from one checkpoint to the
    next by a job that serves them all (``serve``): the log is read from where the
    last checkpoint left off, never again from the latest link."""

    def __init__(self, db: str, run_id: str, checked: bool) -> None:
        ref = parse_db(db)
        self.run_id = run_id
        self.reader = open_store(ref, readonly=True, checked=checked).reader()
        try:
            self.store = open_store(ref, checked=checked)
        except BaseException:
            self.reader.close()
            raise
        self.links: LinkFold | None = None
        self.broken = False  # a link could not be stored: the fold cannot go on from it

    def __enter__(self) -> _Chain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader.close()

    def checkpoint(self, at_least: int, fold: Callable[..., None]) -> bool:
        """Fold the run as committed now and store its link; whether one was stored
        (not when fewer than ``at_least`` events were folded past the last link)."""
        reader, run_id = self.reader, self.run_id
        with collector_paused():
            # Up to what is committed now: a fold that followed the live run to its end
            # might never finish.
            target = reader.last_seq(run_id)
            if self.links is None:
                # The views of the latest link's artifacts are parked as they are decoded.
                # Kept as seqs, read back from the log when pinned (``Parked``).
                parked = Parked(reader.events_at)
                start = start_state(
                    reader, run_id, target, compact=True, chained=True, artifacts=parked.take
                )
                self.links = LinkFold(start, parked)
            links = self.links
            cursor, stored = links.state.last_seq, False
            # Page by page, each read its own short transaction: one read held open for
            # the whole fold would keep the run's writer from recycling its WAL, which
            # would grow by everything the run commits meanwhile.
            while page := reader.event_rows(run_id, after=cursor, until=target, limit=PAGE):
                cursor = page[-1][0]
                fold(_fold_page, links, page)
                del page  # not alive while the next page is read
                if links.full():
                    if not self._store(links):
                        return False
                    stored = True
            if not links.behind:  # nothing folded, or the last page's link is at the target
                return stored
            if links.behind < max(at_least, 1) and not stored:
                return False
            return self._store(links) or stored

    def _store(self, links: LinkFold) -> bool:
        stored = _store(self.store, self.run_id, links)
        # ``link`` began the next segment whether or not its link was stored: a link
        # after it would name one that is not there.
        self.broken = self.broken or not stored
        return stored


def serve(db: str, run_id: str, at_least: int, requests: BinaryIO, checked: bool = False) -> int:
    """Checkpoint ``run_id`` each time a line comes on ``requests`` (a live run's pipe),
    from one fold kept between them, until it ends (the run closed it, or is gone);
    the exit status: 0, or 1 once a link could not be stored.

    One job per run, not one per checkpoint: a job per checkpoint paid the
    interpreter and imports (some 0.1 s of CPU) and decoded the latest link again
    each time, beside a run whose threads it slows (workload (b): issue 14). Lines
    queued while a fold is under way are each a checkpoint of what is committed by
    then, which stores nothing if too little was (``at_least``). The pages are folded
    in an idle thread, as a job's always are (``snapshot_now``)."""
    with IdleWorker() as worker, _Chain(db, run_id, checked) as chain:
        while requests.readline():
            chain.checkpoint(at_least, worker.call)
            if chain.broken:
                return 1
    return 0


def _store(store: EventStore, run_id: str, links: LinkFold) -> bool:
    """Store the link at the job's state; False if it cannot be stored."""
    seq = links.state.last_seq
    if not seq:
        return False
    try:
        store.save_snapshot(run_id, seq, links.link())
    except DatabaseError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Entry point of the job process: ``DB RUN [AT_LEAST]``; the exit status says if a
    snapshot was stored."""
    args = argv if argv is not None else sys.argv[1:]
    serving = SERVE in args
    args = [a for a in args if a != SERVE]
    db, run_id = args[:2]
    if db == DB_FROM_ENV:
        db = os.environ.get(DB_ENV, "")
    at_least = int(args[2]) if len(args) > 2 else SNAPSHOT_EVERY
    parent = os.environ.get(PARENT_ENV, "")
    by_run = parent.isdigit()
    if by_run and not stop_with_parent(int(parent)):
        return 3  # the run is already gone: nobody is left to resume from this soon
    lower_priority()
    try:
        # Started by a run (whose writer checked the file): no second check.
        if serving:
            return serve(db, run_id, at_least, sys.stdin.buffer, checked=by_run)
        return 0 if snapshot_now(db, run_id, at_least, checked=by_run, idle=True) else 1
    except DatabaseError:
        return 2  # the file went away or is damaged: the run (or a reader) will say so


if __name__ == "__main__":
    raise SystemExit(main())
