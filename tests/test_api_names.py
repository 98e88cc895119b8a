"""Registered names: @flock_type(name=...) is the type's name in the log."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from pydantic import BaseModel

from flock_es import Flock, flock_type
from flock_es.domain import registry
from flock_es.errors import DefinitionError
from tests.conftest import run_cli

PROGRAMS = Path(__file__).parent / "programs"


@flock_type(name="shop.Order")
class ShopOrder(BaseModel):
    item: str


@flock_type
class ShopReceipt(BaseModel):
    item: str


def published(db: Path) -> list[tuple[str, str]]:
    con = sqlite3.connect(db)
    rows = con.execute("SELECT body FROM events WHERE kind = 'artifact.published' ORDER BY seq")
    out = [(json.loads(b)["type"], json.loads(b)["produced_by"]) for (b,) in rows]
    con.close()
    return out


def test_the_registered_name_is_the_types_name_and_the_class_name_an_alias() -> None:
    assert registry.type_name(ShopOrder) == "shop.Order"
    assert registry.type_name(ShopReceipt) == "ShopReceipt"
    assert registry.resolve("shop.Order") is ShopOrder
    assert registry.resolve("ShopOrder") is ShopOrder  # older logs and typed dicts naming the class
    assert registry.to_object("ShopOrder", {"item": "tea"}) == ShopOrder(item="tea")


def test_a_blank_name_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="non-empty string"):
        flock_type(name=" ")


async def test_events_subscriptions_and_store_use_the_registered_name(db_path: Path) -> None:
    flock = Flock(db=db_path)
    flock.agent("till").consumes(ShopOrder).publishes(ShopReceipt).with_function(
        lambda o: ShopReceipt(item=o.item)
    )
    await flock.publish(ShopOrder(item="tea"))
    await flock.publish({"type": "shop.Order", "item": "cake"})
    await flock.publish({"type": "ShopOrder", "item": "jam"})
    await flock.run_until_idle()
    await flock.close()
    kinds = published(db_path)
    assert [t for t, _ in kinds].count("shop.Order") == 3
    assert "ShopOrder" not in [t for t, _ in kinds]
    con = sqlite3.connect(db_path)
    (body,) = con.execute("SELECT body FROM events WHERE kind = 'run.started'").fetchone()
    con.close()
    (till,) = json.loads(body)["agents"]
    assert till["publishes"] == ["ShopReceipt"]
    assert till["subscriptions"][0]["types"] == ["shop.Order"]
    assert await flock.store.get_by_type(ShopOrder) == [
        ShopOrder(item="tea"),
        ShopOrder(item="cake"),
        ShopOrder(item="jam"),
    ]


@pytest.mark.slow
def test_a_program_with_named_types_runs_and_replays_identical(tmp_path: Path) -> None:
    db = tmp_path / "named.db"
    out = run_cli(["run", PROGRAMS / "named_types.py", "--db", db, "-q"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "2 verdicts\n"
    types = [t for t, _ in published(db)]
    assert types.count("news.Story") == 2 and types.count("news.Summary") == 2
    replay = run_cli(["replay", "latest", "--db", db], cwd=tmp_path)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "identical" in replay.stdout
