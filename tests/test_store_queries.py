"""Flock's store queries on ``flock.store`` and ``ctx.store`` (issue 15), end to end:
a real run on a real SQLite file (and PostgreSQL), queries answered from the read models."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from flock_es import Flock, flock_type
from flock_es.domain import ids as ids_of
from flock_es.domain.visibility import PrivateVisibility
from flock_es.log.backends import open_reader
from flock_es.runtime.board_queries import ArtifactEnvelope, BoardSource, FilterConfig
from flock_es.runtime.context import AgentContext
from flock_es.runtime.replay import Replayer
from tests.pg import pg_url  # noqa: F401  (fixture)


@flock_type
class Ticket(BaseModel):
    text: str


@flock_type
class Reply(BaseModel):
    text: str
    seen: int = 0


def program(db: Path | str, seen: dict[str, Any] | None = None) -> Flock:
    """A support desk: ``answer`` replies to each ticket and looks at the board as it goes."""
    flock = Flock(db=db)

    async def answer(ticket: Ticket, ctx: AgentContext) -> Reply:
        assert ctx.store is not None
        page, total = await ctx.store.query_artifacts(type=Ticket, limit=None)
        if seen is not None:
            seen[ticket.text] = [a.payload["text"] for a in page]
        return Reply(text=f"re: {ticket.text}", seen=total)

    flock.agent("answer").consumes(Ticket).publishes(Reply).with_function(answer)
    flock.agent("audit").consumes(Reply).with_function(lambda r: None)
    return flock


async def desk(db: Path | str, seen: dict[str, Any] | None = None) -> tuple[Flock, list[str]]:
    flock = program(db, seen)
    ids = [await flock.publish(Ticket(text="t1"), tags={"urgent"}, correlation_id="c1")]
    ids.append(await flock.publish(Ticket(text="t2")))
    secret = PrivateVisibility(agents={"boss"})
    ids.append(await flock.publish(Ticket(text="hush"), visibility=secret, tags={"urgent"}))
    ids.append(await flock.publish(Ticket(text="t3"), correlation_id="c1"))
    await flock.run_until_idle()
    return flock, ids


async def test_orchestrator_store_queries(tmp_path: Path) -> None:
    before = time.time()
    flock, ids = await desk(tmp_path / "s.db")
    store = flock.store
    page, total = await store.query_artifacts(type=Ticket)
    assert total == 4 and [a.payload["text"] for a in page] == ["t1", "t2", "hush", "t3"]
    assert (await store.query_artifacts(type="Ticket", limit=2, offset=1)).items[0].id == ids[1]
    urgent = await store.query_artifacts(tags={"urgent"})
    assert [a.id for a in urgent.items] == [ids[0], ids[2]]
    assert (await store.query_artifacts(correlation_id="c1", type=Ticket)).total == 2
    # Outputs inherit the correlation of their input.
    assert (await store.query_artifacts(correlation_id="c1", produced_by="answer")).total == 2
    flock_filter = FilterConfig(type_names={"Reply"}, start=datetime.fromtimestamp(before, UTC))
    assert (await store.query_artifacts(flock_filter)).total == 3
    assert (await store.query_artifacts(since=time.time() + 60)).total == 0
    assert (await store.query_artifacts(visibility="private")).items[0].id == ids[2]

    got = await store.get(ids[0])
    assert got is not None and got.tags == ("urgent",) and got.obj == Ticket(text="t1")
    assert await store.get("a-missing") is None
    assert [r.payload["text"] for r in await store.list_by_type(Reply)] == [
        "re: t1",
        "re: t2",
        "re: t3",
    ]
    summary = await store.summarize_artifacts()
    assert summary["total"] == 7
    assert summary["by_type"] == {"Ticket": 4, "Reply": 3}
    assert summary["by_producer"] == {"external": 4, "answer": 3}
    assert summary["tag_counts"] == {"urgent": 2}
    assert (await store.summarize_artifacts(type=Reply))["total"] == 3
    await flock.close()


async def test_consumption_records(tmp_path: Path) -> None:
    flock, ids = await desk(tmp_path / "s.db")
    store = flock.store
    records = await store.consumptions(ids[0])
    assert [(r.consumer, r.artifact_id) for r in records] == [("answer", ids[0])]
    assert records[0].run_id == flock.run_id
    assert records[0].task_id == ids_of.task_id(flock.run_id, "answer", 0, [ids[0]])
    replies = [a.id for a in await store.list_by_type(Reply)]
    assert [r.artifact_id for r in await store.consumptions(agent="audit")] == replies
    page = await store.query_artifacts(type=Ticket, limit=1, embed_meta=True)
    env = page.items[0]
    assert isinstance(env, ArtifactEnvelope) and env.consumptions == records
    history = await store.agent_history_summary("answer")
    assert history == {
        "produced": {"total": 3, "by_type": {"Reply": 3}},
        "consumed": {"total": 3, "by_type": {"Ticket": 3}},  # not the private one
    }
    await flock.close()


async def test_agent_queries_respect_visibility_and_see_the_board_as_of_their_input(
    tmp_path: Path,
) -> None:
    seen: dict[str, Any] = {}
    flock, ids = await desk(tmp_path / "s.db", seen)
    # The answer to t2 saw t1 and t2, never the private ticket, never later ones.
    assert seen == {"t1": ["t1"], "t2": ["t1", "t2"], "t3": ["t1", "t2", "t3"]}
    agent = flock.get_agent("answer")
    ctx_store = BoardSource(flock.db_path, flock.run_id)
    assert ctx_store.queries() is not None
    from flock_es.runtime.store import AgentStore

    as_answer = AgentStore(lambda: flock.state, agent.identity(), ctx_store)
    assert await as_answer.get(ids[2]) is None
    assert (await as_answer.summarize_artifacts(tags="urgent"))["total"] == 1
    assert ids[2] not in [r.artifact_id for r in await as_answer.consumptions()]
    ctx_store.close()
    await flock.close()


async def test_store_queries_before_anything_is_published(tmp_path: Path) -> None:
    flock = program(tmp_path / "never.db")
    assert await flock.store.query_artifacts() == ([], 0)
    assert await flock.store.get("a-1") is None
    assert (await flock.store.summarize_artifacts())["total"] == 0
    assert await flock.store.consumptions() == []
    with pytest.raises(ValueError, match="limit"):
        await flock.store.query_artifacts(limit=-1)


async def test_invoke_outputs_kept_out_of_the_store_stay_out(tmp_path: Path) -> None:
    flock = program(tmp_path / "s.db")
    await flock.invoke("answer", Ticket(text="quiet"), publish_outputs=False)
    assert (await flock.store.query_artifacts()).total == 0
    await flock.close()


async def test_replay_answers_agent_queries_as_the_live_run_did(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    flock, _ = await desk(db)
    run_id = flock.run_id
    await flock.close()
    with open_reader(db) as reader:
        events = reader.events(run_id)
    replayer = Replayer(events, program(db).agents)
    replayer.executor.board = BoardSource(db, run_id)
    report = await replayer.run()
    assert report.identical, report.divergence


async def test_store_queries_on_postgres(pg_url: str) -> None:  # noqa: F811
    seen: dict[str, Any] = {}
    flock, ids = await desk(pg_url, seen)
    assert seen["t3"] == ["t1", "t2", "t3"]
    assert [a.id for a in (await flock.store.query_artifacts(tags="urgent")).items] == [
        ids[0],
        ids[2],
    ]
    assert (await flock.store.summarize_artifacts())["by_type"] == {"Ticket": 4, "Reply": 3}
    assert len(await flock.store.consumptions()) == 6  # 3 tickets answered, 3 replies audited
    await flock.close()
