"""The store queries' part of the log contract: every backend answers them alike.

``EventStoreContract`` (tests/log_contract.py) inherits ``StoreQueriesContract``,
so the SQLite and PostgreSQL suites both run these tests against a real database.
Each backend's suite also provides ``downgrade_to_v2`` (a schema-2 database with the
same events) for the upgrade test.
"""

from __future__ import annotations

from typing import Any, cast

from flock_es.domain.events import (
    ArtifactPublished,
    ArtifactReleased,
    Event,
    EventKind,
    RunStarted,
    TaskScheduled,
    make_event,
)
from flock_es.domain.visibility import Identity
from flock_es.log.ports import EventStore
from flock_es.log.published import published
from flock_es.log.queries import BoardQueries
from flock_es.log.query_models import QUERY_INDEX_NAMES
from flock_es.log.query_values import ArtifactFilter

__all__ = ["DOWNGRADE_TO_V2", "StoreQueriesContract", "board_events"]

# Turns a current database into the schema-2 layout (the version itself is set by
# each backend): what an upgrade starts from.
DOWNGRADE_TO_V2 = [
    "DROP TABLE snapshots",
    "DROP TABLE artifact_tags",
    "DROP TABLE consumptions",
    *(f"DROP INDEX IF EXISTS {n}" for n in QUERY_INDEX_NAMES if n.startswith("artifacts_")),
    *(
        f"ALTER TABLE artifacts DROP COLUMN {c}"
        for c in ("task_id", "correlation_id", "vis_kind", "visibility", "released")
    ),
    "CREATE INDEX artifacts_type ON artifacts(run_id, type)",
]

RUN, OTHER = "r-board-1", "r-board-2"
T0 = 1_700_000_000.0


def _art(run: str, aid: str, typ: str, ts: float, **kw: Any) -> Event:
    # ``kw``: any of its optional fields (tags, visibility, produced_by, ...).
    body = cast(ArtifactPublished, {"id": aid, "type": typ, "payload": {"id": aid}, **kw})
    return make_event(run, EventKind.ARTIFACT_PUBLISHED, body, ts)


def board_events() -> list[Event]:
    """Two runs: ideas with tags, correlations, producers and visibilities, their consumers."""
    evs = [
        make_event(r, EventKind.RUN_STARTED, RunStarted(model="m", agents=[]), T0)
        for r in (RUN, OTHER)
    ]
    for i in range(10):
        tags = ["urgent"] if i % 3 == 0 else []
        tags += ["blue"] if i % 2 == 0 else []
        evs.append(
            _art(
                RUN,
                f"i{i}",
                "Idea",
                T0 + i,
                produced_by="external" if i < 5 else "writer",
                correlation_id=f"c{i % 2}",
                tags=tags,
            )
        )
    evs.append(_art(RUN, "p0", "Plan", T0 + 20, produced_by="planner", task_id="t0"))
    secret = {"kind": "private", "agents": ["boss"]}
    evs.append(_art(RUN, "s0", "Idea", T0 + 21, visibility=secret, tags=["urgent"]))
    later = {"kind": "after", "ttl": 5.0, "then": {"kind": "public"}}
    evs.append(_art(RUN, "l0", "Idea", T0 + 22, visibility=later))
    evs.append(_art(OTHER, "i0", "Idea", T0 + 1, tags=["urgent"]))
    for task, agent, inputs in (("t0", "planner", ["i0", "i1"]), ("t1", "critic", ["i0"])):
        body = TaskScheduled(task_id=task, agent=agent, sub_index=0, inputs=inputs)
        evs.append(make_event(RUN, EventKind.TASK_SCHEDULED, body, T0 + 30))
    return evs


def released() -> Event:
    return make_event(RUN, EventKind.ARTIFACT_RELEASED, ArtifactReleased(artifact_id="l0"), T0 + 40)


def _ids(page: list[Any]) -> list[str]:
    return [a.id for a in page]


def _body_ids(events: list[Event]) -> list[str]:
    return [str(e.body["id"]) for e in events]


class StoreQueriesContract:
    """Store-query tests every backend inherits (not collected by itself)."""

    async def filled(self, store: EventStore) -> None:
        w = await store.open_writer()
        await w.append(board_events())
        await w.close()

    async def test_published_events_by_id_type_correlation_and_seq(self, store: EventStore) -> None:
        # What a compact runtime state reads back (flock_es.runtime.artifacts).
        await self.filled(store)
        with store.reader() as r:
            q, last = BoardQueries(r), r.last_seq(RUN)
            assert _body_ids(published(q, RUN, last, ids=["i3", "p0", "nope"])) == ["i3", "p0"]
            (other,) = published(q, OTHER, r.last_seq(OTHER), ids=["i0"])
            assert other.run_id == OTHER and other.body["tags"] == ["urgent"]
            assert _body_ids(published(q, RUN, last, type_name="Plan")) == ["p0"]
            corr = published(q, RUN, last, correlation_id="c1")
            assert _body_ids(corr) == ["i1", "i3", "i5", "i7", "i9"]
            every = published(q, RUN, last)
            assert _body_ids(every) == [*(f"i{i}" for i in range(10)), "p0", "s0", "l0"]
            # The same events as the log's own read, seqs and all.
            logged = {e.seq: e for e in r.events(RUN)}
            assert all(logged[e.seq] == e for e in every)
            # Only up to the seq asked (where a replay's walk stands).
            cut = published(q, RUN, last, ids=["i4"])[0].seq
            assert cut is not None
            assert _body_ids(published(q, RUN, cut, type_name="Idea")) == [
                f"i{i}" for i in range(5)
            ]
            assert published(q, RUN, cut, ids=["i5"]) == []
            assert r.events_at([cut, 10**9, 1]) == [logged[1], logged[cut]]
            assert r.events_at([]) == []

    async def test_store_filters_page_in_publication_order(self, store: EventStore) -> None:
        await self.filled(store)
        with store.reader() as r:
            q = BoardQueries(r)
            ideas = ArtifactFilter(run_id=RUN, types=("Idea",))
            page, total = q.artifacts(ideas, limit=3, offset=2)
            assert (_ids(page), total) == (["i2", "i3", "i4"], 12)
            assert q.artifacts(ideas, limit=0) == ([], 12)
            assert _ids(q.artifacts(ArtifactFilter(run_id=RUN, produced_by=("writer",)))[0]) == [
                f"i{i}" for i in range(5, 10)
            ]
            corr = q.artifacts(ArtifactFilter(run_id=RUN, correlation_id="c1"))[0]
            assert _ids(corr) == ["i1", "i3", "i5", "i7", "i9"]
            both = ArtifactFilter(run_id=RUN, tags=("urgent", "blue"))
            assert _ids(q.artifacts(both)[0]) == ["i0", "i6"]
            window = ArtifactFilter(run_id=RUN, since=T0 + 8, until=T0 + 20)
            assert _ids(q.artifacts(window)[0]) == ["i8", "i9", "p0"]
            assert _ids(q.artifacts(ArtifactFilter(run_id=RUN, visibility=("private",)))[0]) == [
                "s0"
            ]
            hide = ArtifactFilter(run_id=RUN, types=("Idea",), exclude_tag="blue")
            assert q.artifacts(hide)[1] == 7
            assert _ids(q.artifacts(ArtifactFilter(run_id=RUN, until_seq=4))[0]) == ["i0", "i1"]
            assert q.artifacts(ArtifactFilter(tags=("urgent",)))[1] == 6  # every run
            art = q.artifact("i0", ArtifactFilter(run_id=RUN))
            assert art is not None and art.tags == ("blue", "urgent")
            assert art.correlation_id == "c0" and art.payload == {"id": "i0"}
            plan = q.artifact("p0", ArtifactFilter(run_id=RUN))
            assert plan is not None and plan.task_id == "t0" and plan.produced_by == "planner"
            assert q.artifact("nope", ArtifactFilter(run_id=RUN)) is None

    async def test_store_hides_what_the_viewer_may_not_see(self, store: EventStore) -> None:
        await self.filled(store)
        worker, boss = Identity("worker"), Identity("boss")
        everything = ArtifactFilter(run_id=RUN, types=("Idea",))
        with store.reader() as r:
            q = BoardQueries(r)
            assert q.artifacts(everything, viewer=worker)[1] == 10  # not s0, not l0 (unreleased)
            assert q.artifacts(everything, viewer=boss)[1] == 11
            assert q.artifact("s0", ArtifactFilter(run_id=RUN), worker) is None
            urgent = ArtifactFilter(run_id=RUN, tags=("urgent",))
            assert q.summary(urgent, worker)["total"] == 4
            assert q.summary(urgent, boss)["total"] == 5
        w = await store.open_writer()
        await w.append([released()])
        await w.close()
        with store.reader() as r:
            page, total = BoardQueries(r).artifacts(everything, viewer=worker)
            assert total == 11 and _ids(page)[-1] == "l0"

    async def test_store_summary_and_consumptions(self, store: EventStore) -> None:
        await self.filled(store)
        with store.reader() as r:
            q = BoardQueries(r)
            s = q.summary(ArtifactFilter(run_id=RUN))
            assert s["total"] == 13
            assert s["by_type"] == {"Idea": 12, "Plan": 1}
            assert s["by_producer"] == {"external": 7, "writer": 5, "planner": 1}
            assert s["by_visibility"] == {"public": 11, "private": 1, "after": 1}
            assert s["tag_counts"] == {"urgent": 5, "blue": 5}
            assert s["earliest_created_at"].startswith("2023-11-14T22:13:20")
            assert q.summary(ArtifactFilter(run_id="none")) == BoardQueries.empty_summary()
            took = q.consumptions(RUN)
            assert [(c.task_id, c.artifact_id, c.agent) for c in took] == [
                ("t0", "i0", "planner"),
                ("t0", "i1", "planner"),
                ("t1", "i0", "critic"),
            ]
            assert [c.agent for c in q.consumptions(RUN, artifact_ids=["i0"])] == [
                "planner",
                "critic",
            ]
            assert [c.artifact_id for c in q.consumptions(RUN, agent="critic")] == ["i0"]
            history = q.agent_history(RUN, "planner")
            assert history["produced"] == {"total": 1, "by_type": {"Plan": 1}}
            assert history["consumed"] == {"total": 2, "by_type": {"Idea": 2}}

    async def test_store_read_models_rebuild_from_events(self, store: EventStore) -> None:
        await self.filled(store)
        w = await store.open_writer()
        await w.append([released()])
        await w.close()

        def snapshot() -> list[Any]:
            with store.reader() as r:
                return [
                    r.query(f"SELECT * FROM {t} ORDER BY 1, 2, 3")
                    for t in ("artifacts", "artifact_tags", "consumptions")
                ]

        before = snapshot()
        assert len(before[1]) == 11 and len(before[2]) == 3
        store.rebuild_read_models()
        assert snapshot() == before

    def downgrade_to_v2(self, store: EventStore) -> None:
        raise NotImplementedError

    async def test_schema_2_upgrades_and_fills_the_query_models(self, store: EventStore) -> None:
        await self.filled(store)
        self.downgrade_to_v2(store)
        w = await store.open_writer()  # upgrades: new columns and tables, filled from events
        await w.append([released()])
        await w.close()
        with store.reader() as r:
            q = BoardQueries(r)
            urgent = ArtifactFilter(run_id=RUN, tags=("urgent",))
            assert _ids(q.artifacts(urgent, viewer=Identity("w"))[0]) == ["i0", "i3", "i6", "i9"]
            assert len(q.consumptions(RUN)) == 3
            assert q.summary(ArtifactFilter(run_id=RUN))["by_visibility"]["after"] == 1
