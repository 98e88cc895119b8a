"""A run of this process on a shared log: ``flock-es run --db postgresql://``, or
``--share``/``--no-execute`` on a SQLite file, and the resume or fork of such a run.

``ShareRun`` routes the run's events through a ``RunLink`` (serialised,
fenced commits) and, unless told not to, serves the run's tasks with an
embedded ``Worker`` alongside any ``flock-es worker`` processes.

Example::

    flock.share = ShareRun(flock, url, execute=True, concurrency=16)
    if is_shared_run("data/flock-es.db", run_id): ...
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from flock_es.log.ports import open_store
from flock_es.runtime.engine import Engine
from flock_es.runtime.flock import Flock
from flock_es.runtime.shared_run import RunLink, SharedActor
from flock_es.runtime.worker import Worker

__all__ = ["ShareRun", "is_shared_run"]


class ShareRun:
    """Makes a ``Flock`` run on a shared log (``flock-es run --db postgresql://``,
    or ``--share``/``--no-execute`` on a SQLite file):
    its events go through a ``RunLink``, and unless ``execute`` is False an
    embedded worker executes its tasks alongside any other workers.

    Example::

        flock.share = ShareRun(flock, url, execute=True, concurrency=16)
    """

    def __init__(self, flock: Flock, url: str, *, execute: bool, concurrency: int) -> None:
        self.worker = Worker(flock, url, concurrency=concurrency, only_run=flock.run_id)
        self.flock = flock
        self.execute = execute
        self._stop = asyncio.Event()
        self._serving: asyncio.Task[None] | None = None

    async def open_sink(self) -> RunLink:
        # A resumed run's id and database are known only now.
        self.worker.only_run = self.flock.run_id
        self.worker.url = str(self.flock.db_path)
        await self.worker.connect()
        link = self.worker.link_for(self.worker.flock.run_id)
        link.fence = self.worker.flock.lease  # the run's owner: its commits check the lease
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

    def resume_pending(self, engine: Engine) -> int:
        """A resumed shared run: its unfinished tasks are claimed like any others (so
        none runs twice while a live worker holds it); wait for them. Returns how many."""
        link = self.worker.links[engine.kernel.run_id]
        engine.work.spawn(link.until_idle(), "flock-es:shared-idle")
        self.worker.wake()
        return len(engine.state.pending_tasks())

    async def _close(self) -> None:
        self._stop.set()
        if self._serving is not None:
            with contextlib.suppress(Exception):
                await self._serving
        await self.worker.close()


def is_shared_run(db: str | os.PathLike[str], run_id: str) -> bool:
    """Whether ``run_id`` was opened to workers (its resume then takes part like one)."""

    async def check() -> bool:
        runs = await open_store(db).open_shared()
        try:
            return await runs.is_shared(run_id)
        finally:
            await runs.close()

    return asyncio.run(check())
