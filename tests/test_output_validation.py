"""An object its own type does not validate (a field assigned after it was made:
pydantic checks assignments only with ``validate_assignment=True``) is refused
where it is published. It was committed, and then a resume or replay could not
rebuild it ("Stock failed validation"), so the run could never be resumed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from flock_es import Flock, flock_type
from flock_es.domain.events import EventKind
from flock_es.errors import PayloadInvalid
from flock_es.log.backends import open_reader
from tests.conftest import run_cli


@flock_type
class VOrder(BaseModel):
    qty: int


@flock_type
class VStock(BaseModel):
    left: int = Field(ge=0)


PROGRAM = """
from pydantic import BaseModel, Field
from flock_es import Flock, flock_type

@flock_type
class Order(BaseModel):
    qty: int

@flock_type
class Stock(BaseModel):
    left: int = Field(ge=0)

def reserve(o: Order) -> Stock:
    s = Stock(left=3)
    s.left -= o.qty  # not validated: -2
    return s

flock = Flock()
flock.agent("reserve").consumes(Order).publishes(Stock).with_function(reserve)

async def main():
    await flock.publish(Order(qty=5))
"""


def test_a_function_agent_s_invalid_output_fails_its_task_live(tmp_path: Path) -> None:
    program, db = tmp_path / "mutate.py", tmp_path / "v.db"
    program.write_text(PROGRAM)
    out = run_cli(["run", program, "--db", db, "-q"])
    assert out.returncode == 1 and "Stock is not valid: left" in out.stderr, out.stderr
    with open_reader(db) as r:
        run_id = r.resolve_run("latest")
        kinds = [e.kind for e in r.iter_events(run_id)]
    assert kinds.count(EventKind.TASK_FAILED) == 1
    assert kinds.count(EventKind.ARTIFACT_PUBLISHED) == 1  # the order alone
    out = run_cli(["replay", run_id, "--db", db])
    assert out.returncode == 0 and out.stdout.strip().endswith("identical"), out.stdout


def test_publishing_an_invalid_object_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        flock = Flock(db=tmp_path / "p.db")
        stock = VStock(left=1)
        stock.left = -1
        try:
            with pytest.raises(PayloadInvalid, match="VStock is not valid: left"):
                await flock.publish(stock)
            with pytest.raises(PayloadInvalid, match=r"object 1 \(from 0\) of the publish"):
                await flock.publish_many([VStock(left=0), stock])
        finally:
            await flock.close()

    asyncio.run(main())
