"""The log contract: what every ``EventStore`` backend must do.

Inherit ``EventStoreContract`` in a ``Test...`` class and implement
``make_store`` (a fresh, empty store), ``location`` (the path or URL a second
process passes to ``open_store``) and ``set_schema_version``; pytest then runs
every test below against that backend (the eventsourcing recorder-test
pattern). ``tests/test_log_contract.py`` does it for SQLite.

Example::

    class TestPostgresLog(EventStoreContract):
        def make_store(self, tmp_path): ...
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from flock_es.domain.events import (
    SCHEMA_VERSION,
    ArtifactPublished,
    Event,
    EventKind,
    RunFinished,
    RunStarted,
    TaskCompleted,
    TaskScheduled,
    make_event,
)
from flock_es.errors import DatabaseError, RunNotFoundError, RunOwnedError
from flock_es.log.ports import EventReader, EventStore, EventWriter, Lease
from flock_es.log.shared_ports import SharedRuns
from tests.counters_contract import RunCountersContract
from tests.store_contract import StoreQueriesContract

RUN = "r-test-0001"

__all__ = ["EventStoreContract", "artifact", "started"]


def started(run: str = RUN, **kw: Any) -> Event:
    body = cast(RunStarted, {"model": "offline", "agents": [], **kw})  # kw: optional fields
    return make_event(run, EventKind.RUN_STARTED, body, time.time())


def artifact(i: int, run: str = RUN) -> Event:
    body = ArtifactPublished(id=f"a-{i}", type="Seed", payload={"i": i})
    return make_event(run, EventKind.ARTIFACT_PUBLISHED, body, time.time())


def finished(run: str = RUN) -> Event:
    return make_event(run, EventKind.RUN_FINISHED, RunFinished(status="completed"), time.time())


CLAIMER = textwrap.dedent(
    """
    import os, sys
    from flock_es.errors import UserError
    from flock_es.log import open_store
    store = open_store(sys.argv[1])
    try:
        lease = store.claim(sys.argv[2], lease_seconds=float(sys.argv[3]))
    except UserError as exc:
        print(exc)
        sys.exit(exc.exit_code)
    print("claimed", lease.pid)
    sys.stdout.flush()
    if sys.argv[4] == "die":
        os._exit(0)  # no release: a dead owner
    store.release(lease)
    """
)


class EventStoreContract(StoreQueriesContract, RunCountersContract):
    """Tests every backend inherits (the store queries' ones from ``StoreQueriesContract``,
    the runs' counters' from ``RunCountersContract``). Not collected by itself (no
    ``Test`` prefix)."""

    def make_store(self, tmp_path: Path) -> EventStore:
        raise NotImplementedError

    def location(self, store: EventStore) -> str:
        return store.location

    def set_schema_version(self, store: EventStore, version: int) -> None:
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> EventStore:
        return self.make_store(tmp_path)

    async def writer(self, store: EventStore) -> EventWriter:
        w = await store.open_writer()
        assert isinstance(w, EventWriter)
        return w

    def claim_in_subprocess(
        self, store: EventStore, run_id: str, lease: float = 30, then: str = "release"
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", CLAIMER, self.location(store), run_id, str(lease), then],
            capture_output=True,
            text=True,
            timeout=60,
        )

    # -- appending and reading -------------------------------------------------

    async def test_nothing_commits_after_a_failed_commit(self, store: EventStore) -> None:
        """A unit decided after one whose commit failed may name what only that one held
        (a batch taking an artifact whose publish was lost). A full disk let such a later,
        smaller unit commit: a task whose input was in no log. So after a failure the
        writer commits nothing more, and each later unit hears of the failure."""
        w = await self.writer(store)
        await w.append([started()])
        unwritable = artifact(1)
        unwritable.body["payload"] = {"i": object()}  # not JSON: its commit fails
        with pytest.raises(Exception) as failed:  # the backend's serialisation error
            await w.append([artifact(0), unwritable])
        for later in ([artifact(2)], [artifact(3), artifact(4)]):
            with pytest.raises(type(failed.value)):
                await w.append(later)
        w.enqueue([artifact(5)])  # nobody waits for it: not written either
        with contextlib.suppress(Exception):
            await w.close()
        with store.reader() as r:  # the failed unit rolled back whole, and used no seq
            assert [e.kind for e in r.events(RUN)] == [EventKind.RUN_STARTED]
            assert r.last_seq() == 1

    async def test_append_returns_after_commit_with_gap_free_seq(self, store: EventStore) -> None:
        w = await self.writer(store)
        await w.append([started()])
        await w.append([artifact(1), artifact(2)])
        with store.reader() as r:  # a separate reader sees it as soon as append returned
            assert isinstance(r, EventReader)
            evs = r.events(RUN)
        assert [e.seq for e in evs] == [1, 2, 3]
        assert [e.body.get("id") for e in evs[1:]] == ["a-1", "a-2"]
        assert all(e.v == SCHEMA_VERSION for e in evs)
        await w.close()

    async def test_concurrent_units_are_group_committed(self, store: EventStore) -> None:
        w = await self.writer(store)
        await w.append([started()])
        before = w.commits
        await asyncio.gather(*(w.append([artifact(i)]) for i in range(200)))
        assert w.commits - before < 200  # batched, not one transaction per unit
        with store.reader() as r:
            assert [e.seq for e in r.events(RUN)] == list(range(1, 202))
        await w.close()

    async def test_a_unit_commits_whole(self, store: EventStore) -> None:
        w = await self.writer(store)
        sched = TaskScheduled(task_id="t-1", agent="x", sub_index=0, inputs=["a-1"])
        await w.append(
            [started(), artifact(1), make_event(RUN, EventKind.TASK_SCHEDULED, sched, time.time())]
        )
        with store.reader() as r:
            kinds = [e.kind.value for e in r.events(RUN)]
        assert kinds == ["run.started", "artifact.published", "task.scheduled"]
        await w.close()

    async def test_enqueue_keeps_order_with_later_units(self, store: EventStore) -> None:
        w = await self.writer(store)
        w.enqueue([started()])
        w.enqueue([artifact(1)])
        await w.submit([artifact(2)])
        with store.reader() as r:
            assert [e.body.get("id") for e in r.events(RUN)] == [None, "a-1", "a-2"]
        await w.close()

    async def test_cursor_reads_every_run_in_commit_order(self, store: EventStore) -> None:
        w = await self.writer(store)
        await w.append([started("r-a"), started("r-b")])
        await asyncio.gather(
            *(w.append([artifact(i, "r-a" if i % 2 else "r-b")]) for i in range(50))
        )
        with store.reader() as r:
            seen: list[int] = []
            cursor = 0
            while batch := r.events_after(cursor, limit=7):
                seen.extend(e.seq or 0 for e in batch)
                cursor = batch[-1].seq or 0
            assert seen == list(range(1, 53))
            assert r.last_seq() == 52 and r.first_seq("r-b") == 2
            assert [e.seq for e in r.events("r-a", after=3, until=9)] == [
                e.seq for e in r.events_after(3) if e.run_id == "r-a" and (e.seq or 0) <= 9
            ]
        await w.close()

    async def test_event_rows_are_a_page_of_events_not_yet_decoded(self, store: EventStore) -> None:
        from flock_es.log.reader import row_to_event

        w = await self.writer(store)
        await w.append([started(), *(artifact(i) for i in range(9))])
        with store.reader() as r:
            rows = r.event_rows(RUN, after=2, until=8, limit=4)
            assert [row_to_event(row) for row in rows] == r.events(RUN, after=2, until=8, limit=4)
            assert [row[0] for row in rows] == [3, 4, 5, 6]
            assert r.event_rows(RUN, after=10) == []
        await w.close()

    async def test_change_check_moves_only_on_commit(self, store: EventStore) -> None:
        w = await self.writer(store)
        await w.append([started()])
        with store.reader() as r:
            v0 = r.data_version()
            assert r.data_version() == v0
            await w.append([artifact(1)])
            assert r.data_version() != v0
            assert r.events_after(1)[0].body["id"] == "a-1"
        await w.close()

    # -- read models -------------------------------------------------------------

    async def test_runs_listing_and_resolution(self, store: EventStore) -> None:
        w = await self.writer(store)
        await w.append([started("r-2026-aaa1"), artifact(1, "r-2026-aaa1")])
        await w.append([started("r-2026-bbb2", parent_run="r-2026-aaa1", fork_seq=2)])
        await w.append([finished("r-2026-aaa1")])
        with store.reader() as r:
            runs = {row.run_id: row for row in r.runs()}
            assert runs["r-2026-aaa1"].status == "completed"
            assert runs["r-2026-aaa1"].events == 3
            assert runs["r-2026-bbb2"].status == "running"
            assert runs["r-2026-bbb2"].parent_run == "r-2026-aaa1"
            assert r.resolve_run("r-2026-b") == "r-2026-bbb2"
            assert r.resolve_run("latest") == "r-2026-bbb2"
            with pytest.raises(RunNotFoundError, match="ambiguous"):
                r.resolve_run("r-2026")
            with pytest.raises(RunNotFoundError):
                r.resolve_run("nope")
            assert r.run_stats()["r-2026-aaa1"]["artifacts"] == 1
        await w.close()

    async def test_read_models_rebuilt_from_events_equal_live_ones(self, store: EventStore) -> None:
        w = await self.writer(store)
        await w.append([started("r-one"), *(artifact(i, "r-one") for i in range(5))])
        await w.append([started("r-two", parent_run="r-one", fork_seq=3), artifact(9, "r-two")])
        await w.append([finished("r-one")])
        await w.close()

        def snapshot() -> tuple[list[Any], dict[str, Any]]:
            with store.reader() as r:
                return r.runs(), r.run_stats()

        before = snapshot()
        assert store.rebuild_read_models() == 9
        assert snapshot() == before

    async def test_newer_schema_is_refused(self, store: EventStore) -> None:
        w = await self.writer(store)
        await w.append([started()])
        await w.close()
        self.set_schema_version(store, 10_000)
        with pytest.raises(DatabaseError, match="newer flock-es"):
            store.reader()
        with pytest.raises(DatabaseError, match="newer flock-es"):
            await store.open_writer()

    # -- ownership ---------------------------------------------------------------

    def test_claim_is_exclusive(self, store: EventStore) -> None:
        lease = store.claim(RUN)
        with pytest.raises(RunOwnedError, match=rf"pid {lease.pid} on {lease.host} since"):
            store.claim(RUN)  # even this process, with another claim
        other = self.claim_in_subprocess(store, RUN)
        assert other.returncode == RunOwnedError.exit_code
        assert f"pid {lease.pid}" in other.stdout
        with store.reader() as r:
            owner = r.owner(RUN)
        assert owner is not None and owner.token == lease.token
        store.release(lease)
        assert self.claim_in_subprocess(store, RUN).returncode == 0
        store.release(store.claim(RUN))

    def test_claims_of_different_runs_do_not_conflict(self, store: EventStore) -> None:
        a = store.claim("r-a")
        b = store.claim("r-b")
        store.release(a)
        store.release(b)

    def test_heartbeat_extends_and_expired_leases_are_taken_over(self, store: EventStore) -> None:
        lease = store.claim(RUN, lease_seconds=0.5)
        renewed = store.heartbeat(lease)
        assert renewed.expires >= lease.expires
        time.sleep(0.6)
        other = self.claim_in_subprocess(store, RUN, lease=30, then="die")
        assert other.returncode == 0, other.stdout + other.stderr
        with pytest.raises(RunOwnedError):
            store.heartbeat(renewed)  # the old owner learns it lost the run
        store.release(renewed)  # a no-op now: must not free the new owner's lease
        with store.reader() as r:
            owner = r.owner(RUN)
        assert owner is not None and owner.token != lease.token

    def test_a_dead_owner_on_this_host_is_taken_over(self, store: EventStore) -> None:
        died = self.claim_in_subprocess(store, RUN, lease=600, then="die")
        assert died.returncode == 0
        lease = store.claim(RUN)  # the pid is gone: no need to wait 600 s or force
        store.release(lease)

    def test_force_overrides_a_live_lease(self, store: EventStore) -> None:
        lease = store.claim(RUN)
        forced = store.claim(RUN, force=True)
        assert forced.token != lease.token
        with pytest.raises(RunOwnedError):
            store.heartbeat(lease)
        store.release(forced)

    # -- shared runs: task leases and serialised, fenced commits ---------------------

    @contextlib.asynccontextmanager
    async def two_shared(self, store: EventStore) -> AsyncIterator[tuple[SharedRuns, SharedRuns]]:
        """A started run and two processes' views of the store's ``SharedRuns``."""
        w = await self.writer(store)
        await w.append([started()])
        await w.close()
        a, b = await store.open_shared(), await store.open_shared()
        try:
            yield a, b
        finally:
            await a.close()
            await b.close()

    async def test_task_claims_are_exclusive_and_expired_leases_are_taken_over(
        self, store: EventStore
    ) -> None:
        async with self.two_shared(store) as (a, b):
            assert isinstance(a, SharedRuns)
            tasks = ["t-1", "t-2", "t-3"]
            assert await a.claim_tasks(RUN, tasks, "w-a", 0.4, 2) == ["t-1", "t-2"]
            assert await b.claim_tasks(RUN, tasks, "w-b", 30, 5) == ["t-3"]
            assert await b.claim_tasks(RUN, tasks, "w-b", 30, 5) == []
            assert await a.task_holders(RUN) == {"t-1": "w-a", "t-2": "w-a", "t-3": "w-b"}
            assert await a.renew_tasks("w-a", 0.4) == 2
            await asyncio.sleep(0.6)  # w-a's leases expire: w-b takes them over
            assert await b.claim_tasks(RUN, tasks, "w-b", 30, 5) == ["t-1", "t-2"]
            assert await a.renew_tasks("w-a", 30) == 0
            await b.release_tasks(RUN, "w-b", ["t-1"])
            assert await a.claim_tasks(RUN, tasks, "w-a", 30, 5) == ["t-1"]

    async def test_a_commit_turn_learns_of_lost_leases_and_drops_the_ended_ones(
        self, store: EventStore
    ) -> None:
        async with self.two_shared(store) as (a, b):
            await a.mark_shared(RUN)
            assert await b.is_shared(RUN) and not await b.is_shared("r-other")
            await a.claim_tasks(RUN, ["t-1", "t-2"], "w-a", 0.3, 5)
            await asyncio.sleep(0.5)
            assert await b.claim_tasks(RUN, ["t-2"], "w-b", 30, 5) == ["t-2"]
            body = TaskCompleted(task_id="t-1", agent="x", outputs=[], attempt=1)
            done = make_event(RUN, EventKind.TASK_COMPLETED, body, time.time())
            turn = Turn(1, "w-a", ["t-1", "t-2"], [artifact(1), done])
            events = await a.commit_turn(RUN, turn)
            assert turn.lost == {"t-2"} and [e.seq for e in events] == [2, 3]
            assert await a.task_holders(RUN) == {"t-2": "w-b"}  # t-1's lease went with it
            other = Turn(1, "w-b", ["t-2"], [artifact(2)])
            await b.commit_turn(RUN, other)
            assert [e.seq for e in other.caught_up] == [2, 3] and other.lost == set()

    async def test_a_commit_turn_with_a_run_fence_needs_the_run_lease(
        self, store: EventStore
    ) -> None:
        async with self.two_shared(store) as (runs, _):
            lease = store.claim(RUN)
            await runs.commit_turn(RUN, Turn(1, None, [], [artifact(1)], fence=lease))
            store.claim(RUN, force=True)  # taken over
            with pytest.raises(RunOwnedError):
                await runs.commit_turn(RUN, Turn(2, None, [], [artifact(2)], fence=lease))
            with store.reader() as r:
                assert r.last_seq() == 2  # the fenced turn committed nothing


class Turn:
    """A ``RunTurn`` that commits fixed events and remembers what it was told."""

    def __init__(
        self,
        cursor: int,
        worker: str | None,
        held: list[str],
        events: list[Event],
        fence: Lease | None = None,
    ) -> None:
        self.cursor = cursor
        self.worker = worker
        self.fence = fence
        self._held = held
        self.events = events
        self.lost: set[str] = set()
        self.caught_up: list[Event] = []

    def held(self) -> list[str]:
        return self._held

    def catch_up(self, events: list[Event], lost: set[str]) -> None:
        self.caught_up, self.lost = events, lost

    def build(self) -> list[Event]:
        return self.events

    def ended(self, events: list[Event]) -> list[str]:
        return [e.body["task_id"] for e in events if e.kind is EventKind.TASK_COMPLETED]
