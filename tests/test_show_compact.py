"""``flock-es show``'s text view folds the run compactly (its memory is the pending
work plus what it prints, not the run's size) and prints what the full fold prints,
the retried model calls and tool calls of completed tasks included: those a compact
state let go of are read from the log, before and after the snapshot link it starts
from, on both backends. ``--json`` and ``--payloads`` print what they printed from
the full fold, written a part at a time from a compact one (``show_listing``)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

import flock_es.log.pg_reader as pg_reader
import flock_es.runtime.resume as resume_module
from flock_es import Flock, flock_type
from flock_es.cli.app import app
from flock_es.cli.show_calls import text_view
from flock_es.cli.show_listing import write_json
from flock_es.cli.show_render import print_show, show_data
from flock_es.domain.events import EventKind
from flock_es.errors import PermanentModelError, TransientModelError
from flock_es.log.ports import open_store
from flock_es.log.snapshot_job import snapshot_now
from flock_es.log.snapshots import fold_run
from flock_es.models.base import ModelRequest, ModelResponse
from flock_es.models.offline import OfflineModel
from flock_es.models.retry import RetryPolicy
from flock_es.runtime.resume import load_run
from tests.conftest import run_cli, traced
from tests.pg import pg_admin_url, pg_database


@flock_type
class Query(BaseModel):
    n: int
    city: str


@flock_type
class Forecast(BaseModel):
    summary: str


def weather(city: str) -> str:
    """The weather in a city: long, over lines (the view clips it)."""
    if city.startswith("Err"):
        raise RuntimeError(f"no station   in\n{city}")
    return f"sunny\n\n in {city}  " + "and warm " * 40


def tides(city: str) -> str:
    """The tides of a city."""
    return f"low at noon in {city}"


class Flaky:
    """The offline model, whose first attempt at some calls fails (a 503) and which
    never answers the query of n = 5: calls answered on attempt 2, failed attempts
    and a failed task, with no network."""

    name = "flaky"

    def __init__(self) -> None:
        self.inner = OfflineModel()
        self.seen: set[str] = set()

    def check(self) -> None:
        return None

    async def complete(self, request: ModelRequest) -> ModelResponse:
        text = json.dumps(request.inputs, sort_keys=True)
        n = int(request.inputs[0]["payload"]["n"]) if request.inputs else 0
        if n == 5:
            raise PermanentModelError("no such model", "bad_request", status=400)
        call = f"{len(request.messages)}:{text}"
        first_call = not any(m.get("role") == "tool" for m in request.messages)
        if call not in self.seen and (n % 2 == 0 if first_call else n % 3 == 0):
            self.seen.add(call)
            raise TransientModelError("unavailable  for\n now", "server_error", status=503)
        return await self.inner.complete(request)


def _flock(db: str) -> Flock:
    flock = Flock("flaky", db=db, retry=RetryPolicy(base_delay=0.001, max_delay=0.01))
    flock.clients.register("flaky", Flaky())
    flock.agent("forecaster").consumes(Query).publishes(Forecast).with_tools([weather, tides])
    return flock


async def _record(db: str) -> str:
    """A run of 12 queries whose tasks retry and call tools, with a snapshot link
    after the first 6 (the compact fold of its end starts from it)."""
    flock = _flock(db)
    for n in range(6):
        await flock.publish(Query(n=n, city=f"Oslo{n}" if n != 3 else "Err3"))
    await flock.run_until_idle()
    assert snapshot_now(db, flock.run_id, at_least=1)
    for n in range(6, 12):
        await flock.publish(Query(n=n, city=f"Bergen{n}"))
    await flock.run_until_idle()
    await flock.close()
    return flock.run_id


@pytest.fixture(params=["sqlite", "postgres"])
def recorded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(database, run id) of the run above, on each backend."""
    if request.param == "sqlite":
        db = str(tmp_path / "show.db")
        yield db, asyncio.run(_record(db))
        return
    with pg_database(pg_admin_url()) as url:
        yield url, asyncio.run(_record(url))


def _full_text(db: str, run: str, at: int | None) -> str:
    """What ``show`` printed before it folded compactly: the full fold, rendered."""
    with open_store(db).reader() as log:
        state = load_run(log, run, at)
        before_end = at is not None and at < log.last_seq(run)
    assert not state.compact
    out = io.StringIO()
    with redirect_stdout(out):
        print_show(show_data(state, False, before_end), False)
    return out.getvalue()


@pytest.mark.slow
def test_the_text_view_prints_what_the_full_fold_prints(
    recorded: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, run = recorded
    monkeypatch.setattr(pg_reader, "_CALL_PAGE", 3)  # PostgreSQL's pages: several
    with open_store(db).reader() as log:
        evs = log.events(run)
        for until in (None, evs[len(evs) // 2].seq):
            assert list(log.call_records(run, until)) == [
                e
                for e in evs
                if (until is None or (e.seq or 0) <= until)
                and (
                    e.kind is EventKind.TOOL_CALLED
                    or (e.kind is EventKind.MODEL_CALLED and e.body.get("attempt", 1) > 1)
                )
            ]
        link = log.snapshot(run)
        assert link is not None
        # The compact fold of the end starts from the link, not from event 0.
        _, folded = fold_run(log, run, compact=True)
        assert folded == sum(1 for e in evs if e.seq is not None and e.seq > link[0])
    tools = [e for e in evs if e.kind is EventKind.TOOL_CALLED]
    retried = [e for e in evs if e.kind is EventKind.MODEL_CALLED and e.body.get("attempt", 1) > 1]
    # Calls of completed tasks on both sides of the link, errors and retries among them.
    assert {e.seq is not None and e.seq < link[0] for e in tools + retried} == {True, False}
    assert any(e.body.get("error") for e in tools)
    assert {e.body["call_index"] for e in retried} == {0, 1}

    seqs = [e.seq for e in evs if e.seq is not None]
    tool_seq = next(e.seq for e in tools if e.seq is not None and e.seq > link[0])
    for at in (None, link[0], link[0] - 1, tool_seq, seqs[len(seqs) * 3 // 4]):
        out = run_cli(["show", run, "--db", db, *([] if at is None else ["--at", str(at)])])
        assert out.returncode == 0, out.stderr
        assert out.stdout == _full_text(db, run, at), at

    text = run_cli(["show", run, "--db", db]).stdout
    assert f"Tool calls ({len(tools)})\n" in text
    assert text.count(": answered on attempt 2\n") == len(retried)
    assert "forecaster" in text and "gave up" in text and "  failed    forecaster" in text
    assert "error: weather raised RuntimeError: no station in Err3" in text


def _full_json(db: str, run: str, at: int | None, payloads: bool) -> str:
    """What ``show --json`` printed before it folded compactly: the full fold, dumped."""
    with open_store(db).reader() as log:
        state = load_run(log, run, at)
        before_end = at is not None and at < log.last_seq(run)
    return json.dumps(show_data(state, payloads, before_end), indent=2, default=str) + "\n"


def _full_payloads(db: str, run: str, at: int | None) -> str:
    """What ``show --payloads`` printed before it folded compactly."""
    with open_store(db).reader() as log:
        state = load_run(log, run, at)
        before_end = at is not None and at < log.last_seq(run)
    out = io.StringIO()
    with redirect_stdout(out):
        print_show(show_data(state, True, before_end), True)
    return out.getvalue()


@pytest.mark.slow  # 12 show commands in subprocesses on each backend: about 5 s each
def test_json_and_payloads_print_what_the_full_fold_prints(recorded: tuple[str, str]) -> None:
    db, run = recorded
    with open_store(db).reader() as log:
        seqs = [e.seq for e in log.events(run) if e.seq is not None]
    for at in (None, seqs[0], seqs[len(seqs) // 3], seqs[len(seqs) * 3 // 4]):
        where = [] if at is None else ["--at", str(at)]
        for payloads in (False, True):
            out = run_cli(["show", run, "--db", db, "--json", *where, *(["--payloads"] * payloads)])
            assert out.returncode == 0, out.stderr
            assert out.stdout == _full_json(db, run, at, payloads), (at, payloads)
        out = run_cli(["show", run, "--db", db, "--payloads", *where])
        assert out.returncode == 0, out.stderr
        assert out.stdout == _full_payloads(db, run, at), at
    data = json.loads(run_cli(["show", run, "--db", db, "--json"]).stdout)
    assert data["tool_calls"] and data["retried_calls"] and data["task_list"]["failed"]
    assert len(data["tool_calls"][0]["result"]) > 60  # whole, not clipped as in the text


async def _many_tools(db: Path, n: int) -> str:
    """A finished run of ``n`` tasks, each with a tool call whose result is 20 kB."""

    def report(city: str) -> str:
        """A long report on a city."""
        return f"{city}: " + "x" * 20_000

    flock = Flock("offline", db=db)
    # Four at a time: the tools of four tasks at most are pending work at any seq.
    agent = flock.agent("reporter").consumes(Query).publishes(Forecast).with_tools([report])
    agent.max_concurrency(4)
    await flock.publish_many(Query(n=i, city=f"c{i}") for i in range(n))
    await flock.run_until_idle()
    await flock.close()
    return flock.run_id


@pytest.mark.slow
def test_the_text_view_folds_compactly_and_holds_no_completed_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "tools.db"
    run = asyncio.run(_many_tools(db, 300))
    with open_store(db).reader() as log:
        (state, calls), _, compact_peak = traced(lambda: text_view(log, run, None))
        full, _, full_peak = traced(lambda: load_run(log, run))
    assert state.compact and not state.tasks and not state.calls and not state.tool_calls
    assert len(full.tool_calls) == len(calls[1]) == 300
    # The calls are printed clipped, so they are held clipped: not their 6 MB of results.
    assert all(len(t["result"]) <= 60 for t in calls[1])
    assert compact_peak * 4 < full_peak, (compact_peak, full_peak)

    # --json lists every task and tool call, written as they are read: it holds neither.
    with open_store(db).reader() as log:
        _, _, json_peak = traced(lambda: write_json(log, run, None, _Discard()))
    assert json_peak * 4 < full_peak, (json_peak, full_peak)

    # The command's text view is the compact fold, and --json and --payloads never fold
    # the full state (they fold compactly from event 0: ``show_listing``).
    folds: list[bool] = []
    real = fold_run  # what resume (and so the command) calls

    def spy(*args: Any, **kw: Any) -> Any:
        folds.append(bool(kw.get("compact")))
        return real(*args, **kw)

    monkeypatch.setattr(resume_module, "fold_run", spy)
    for extra in ([], ["--json"], ["--payloads"]):
        res = CliRunner().invoke(app, ["show", run, "--db", str(db), *extra])
        assert res.exit_code == 0, res.output
    assert folds == [True]


class _Discard:
    """A stream that keeps nothing written to it."""

    def write(self, text: str) -> int:
        return len(text)
