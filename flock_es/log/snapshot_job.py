"""One snapshot of a run, taken by a separate process: ``python -m flock_es.log.snapshot_job DB RUN [N]``.

A live run cannot snapshot its own state: the kernel folds events when they are
decided, before they commit (their seqs are not known yet), so that state is not
the fold of any prefix of the log. This job folds the run from its latest sound
snapshot up to what is committed when it starts (as ``fold_run``, in pages) and
stores the result
(``save_snapshot``), at low priority, in its own process: the run's threads do
not wait for it and its interpreter does not carry the work. A job that fails or
is stopped leaves nothing behind (a snapshot is one insert); readers fold from
the log as they would without it.

Example::

    subprocess.Popen([sys.executable, "-m", "flock_es.log.snapshot_job", "data/flock-es.db", run])
"""

from __future__ import annotations

import contextlib
import os
import sys

from flock_es.errors import DatabaseError
from flock_es.log.backends import open_reader, parse_db
from flock_es.log.ports import open_store
from flock_es.log.snapshots import save_snapshot, start_state
from flock_es.projection.fold import apply
from flock_es.projection.snapshot import SNAPSHOT_EVERY, collector_paused

__all__ = ["DB_ENV", "DB_FROM_ENV", "main", "snapshot_now"]

DB_ENV = "FLOCK_ES_SNAPSHOT_JOB_DB"
DB_FROM_ENV = "-"
"""``DB`` given as ``-``: the database is in ``$FLOCK_ES_SNAPSHOT_JOB_DB``. A run hands
its database this way, so a PostgreSQL URL with a password never shows in the job's
command line, which every user of the machine can read (``ps``)."""

NICENESS = 5
PAGE = 5_000
"""Events read per query (per read transaction)."""
"""The job runs behind the run it checkpoints (and anything else on the machine)."""


def snapshot_now(db: str, run_id: str, at_least: int = SNAPSHOT_EVERY) -> bool:
    """Fold ``run_id`` of ``db`` as committed so far and store its snapshot; returns
    whether one was stored (not when fewer than ``at_least`` events were folded past
    the last)."""
    ref = parse_db(db)
    with open_reader(ref) as reader, collector_paused():
        # Up to what is committed now: a fold that followed the live run to its end
        # might never finish.
        target = reader.last_seq(run_id)
        state = start_state(reader, run_id, target)
        cursor, folded = state.last_seq, 0
        # Page by page, each read its own short transaction: one read held open for
        # the whole fold would keep the run's writer from recycling its WAL, which
        # would grow by everything the run commits meanwhile.
        while page := reader.events(run_id, after=cursor, until=target, limit=PAGE):
            for e in page:
                apply(state, e)
            folded += len(page)
            cursor = page[-1].seq or target
    return save_snapshot(open_store(ref), state, folded, at_least)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the job process: ``DB RUN [AT_LEAST]``; the exit status says if a
    snapshot was stored."""
    args = argv if argv is not None else sys.argv[1:]
    db, run_id = args[:2]
    if db == DB_FROM_ENV:
        db = os.environ.get(DB_ENV, "")
    at_least = int(args[2]) if len(args) > 2 else SNAPSHOT_EVERY
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    try:
        return 0 if snapshot_now(db, run_id, at_least) else 1
    except DatabaseError:
        return 2  # the file went away or is damaged: the run (or a reader) will say so


if __name__ == "__main__":
    raise SystemExit(main())
