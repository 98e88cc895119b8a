"""The kernel: nothing acts before its commit, and a failed commit leaves the
in-memory state equal to the log (a real SQLite file that refuses a write)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pydantic import BaseModel

from flock_es import Flock, flock_type
from flock_es.errors import ArtifactValidationError, CommitFailed, DatabaseError
from flock_es.log import LogReader
from flock_es.projection.fold import fold


@flock_type
class KPing(BaseModel):
    n: int


@flock_type
class KPong(BaseModel):
    n: int


@flock_type
class KBad(BaseModel):
    n: int


class NeverRegistered(BaseModel):
    n: int


def refuse(db: Path, type_name: str) -> None:
    """Make the database itself refuse the commit of any artifact of ``type_name``."""
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.kind = 'artifact.published' "
        f"AND json_extract(NEW.body, '$.type') = '{type_name}' "
        "BEGIN SELECT RAISE(ABORT, 'the disk says no'); END"
    )
    con.commit()
    con.close()


async def test_a_failed_commit_leaves_the_state_equal_to_the_log(db_path: Path) -> None:
    flock = Flock(db=db_path)
    flock.agent("echo").consumes(KPing).with_function(lambda p: KPong(n=p.n)).publishes(KPong)
    flock.agent("bad").consumes(KBad).with_function(lambda p: KPong(n=p.n)).publishes(KPong)
    await flock.publish(KPing(n=1))
    await flock.run_until_idle()
    refuse(db_path, "KBad")
    # The writer reports SQLite's refusal as one line naming the database.
    with pytest.raises(DatabaseError, match="the disk says no"):
        await flock.publish(KBad(n=2))
    with LogReader(db_path) as reader:
        durable = fold(reader.iter_events(flock.run_id), compact=True)
    state = flock.state
    assert state.compact  # a live run's state: completed tasks forgotten, counted
    assert set(state.artifacts) == set(durable.artifacts)
    assert set(state.tasks) == set(durable.tasks)
    assert state.finished == durable.finished and state.finished
    assert state.last_seq == durable.last_seq
    assert "KBad" not in state.type_counts
    # The run accepts nothing more: what it would decide next could rest on a lost commit.
    with pytest.raises(CommitFailed):
        await flock.publish(KPing(n=3))
    await flock.close()


async def test_publishing_an_unregistered_type_fails_at_publish(db_path: Path) -> None:
    flock = Flock(db=db_path)
    flock.agent("echo").consumes(KPing).with_function(lambda p: KPong(n=p.n)).publishes(KPong)
    with pytest.raises(ArtifactValidationError, match=r"NeverRegistered.*not registered"):
        await flock.publish(NeverRegistered(n=1))
    await flock.close()
    with LogReader(db_path) as reader:
        kinds = [e.kind.value for e in reader.events(flock.run_id)]
    assert "artifact.published" not in kinds


@flock_type
class KLeaf(BaseModel):
    n: int


async def test_objects_are_built_only_where_a_decision_or_a_run_reads_them(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An artifact whose subscribers have no ``where`` nor gate is decided without its
    object (none is rebuilt from the log for it), and an output nothing consumes is not
    kept built; with a ``where`` the object is built, and the same tasks result."""
    from flock_es.domain import registry
    from flock_es.runtime import object_cache

    monkeypatch.setattr(object_cache, "OBJECT_CACHE", 0)  # nothing stays built: all rebuilt
    flock = Flock(db=db_path)
    flock.agent("plain").consumes(KPing).with_function(lambda p: KLeaf(n=p.n)).publishes(KLeaf)
    flock.agent("picky").consumes(KPong, where=lambda p: p.n > 1).with_function(
        lambda p: KLeaf(n=p.n)
    ).publishes(KLeaf)
    await flock.start()
    engine = flock._engine
    assert engine is not None
    index = engine.kernel.index
    assert not index.needs_object("KPing") and index.needs_object("KPong")
    built: list[str] = []
    real = registry.to_object

    def counting(name: str, payload: dict[str, object]) -> BaseModel:
        built.append(name)
        return real(name, payload)

    monkeypatch.setattr(registry, "to_object", counting)
    await flock.publish_many([KPing(n=i) for i in range(3)])
    await flock.publish_many([KPong(n=i) for i in range(3)])
    await flock.run_until_idle()
    # Each run reads its input (3 + 1); only KPong's decisions read theirs (3).
    assert sorted(built) == ["KPing"] * 3 + ["KPong"] * 4
    outs = [a for a in flock.state.artifacts.values() if a.type == "KLeaf"]
    assert len(outs) == 4
    await flock.close()
