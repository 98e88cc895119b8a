"""Chained snapshots (issue 14): a checkpoint job stores the compact state and the views
the compact fold let go of since the last link; the chain rebuilds the full state a
fold from event 0 has, in its order, and a missing, damaged or stale link falls back
to the log. The jobs hold what the compact fold holds, not the run's whole state."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import flock_es.projection.snapshot_links as links_module
from flock_es.domain.events import Event, EventKind
from flock_es.log.ports import open_store
from flock_es.log.snapshot_job import snapshot_now
from flock_es.log.snapshots import chain, fold_run, start_state
from flock_es.projection import fold
from flock_es.projection.snapshot import decode, encode, rebuild
from flock_es.projection.snapshot_codec import HEADER_BYTES
from flock_es.projection.snapshot_links import LinkFold, Parked
from flock_es.projection.state import RunState
from tests.property_budget import examples
from tests.test_compact_state import _finished_runs, decisions_read, well_formed
from tests.test_fold_properties import AGENTS, ARTS, RUN, TASKS, event_lists
from tests.test_snapshots import news_run  # noqa: F401  (a fixture: a news.py run per backend)

_ORDERED = ("artifacts", "tasks", "calls", "tool_calls", "rewritten_inputs", "mcp_tools")
_SPANS = ("finished", "finished_busy", "finished_spans", "finished_active", "spans_floor")


@st.composite
def task_records(draw: st.DrawFn) -> list[Event]:
    """``event_lists`` with tool calls, rewritten inputs and MCP listings among them
    (entries a compact state lets go of with their task), as a well-formed log."""
    evs = list(draw(event_lists()))
    for _ in range(draw(st.integers(0, 12))):
        task, agent = draw(st.sampled_from(TASKS)), draw(st.sampled_from(AGENTS))
        kind = draw(
            st.sampled_from(
                [
                    EventKind.TOOL_CALLED,
                    EventKind.INPUTS_REWRITTEN,
                    EventKind.MCP_LISTED,
                    EventKind.ARTIFACT_RELEASED,
                ]
            )
        )
        body: dict[str, Any] = {"task_id": task, "agent": agent}
        if kind is EventKind.ARTIFACT_RELEASED:
            body = {"artifact_id": draw(st.sampled_from(ARTS))}
        elif kind is EventKind.TOOL_CALLED:
            body.update(call_index=draw(st.integers(0, 1)), position=draw(st.integers(0, 1)))
            body.update(call_id="c", tool="t", arguments="{}", result=str(draw(st.integers(0, 9))))
        elif kind is EventKind.INPUTS_REWRITTEN:
            body.update(attempt=1, inputs=[{"type": "T", "payload": {}}], state={})
        else:
            body.update(servers={"s": [{"name": str(draw(st.integers(0, 9)))}]})
        evs.insert(draw(st.integers(0, len(evs))), Event(run_id=RUN, kind=kind, body=body, ts=0.0))
    after = draw(st.sets(st.sampled_from(ARTS)))  # AfterVisibility: held until released
    for e in evs:
        if e.kind is EventKind.ARTIFACT_PUBLISHED and e.body["id"] in after:
            e.body["visibility"] = {"kind": "after", "ttl": 1.0, "then": {"kind": "public"}}
    numbered = [dataclasses.replace(e, seq=i + 1, ts=float(i)) for i, e in enumerate(evs)]
    return _as_logged(well_formed(numbered))


def _as_logged(evs: list[Event]) -> list[Event]:
    """Without what no real log holds: a task's records before its scheduling or after
    its completion, a release of an artifact not waiting for one (``well_formed`` drops
    the others)."""
    held: set[str] = set()
    waiting: set[str] = set()
    out = []
    for e in evs:
        tid = str(e.body.get("task_id"))
        if e.kind is EventKind.TASK_SCHEDULED:
            held.add(tid)
        elif e.kind is EventKind.TASK_COMPLETED:
            held.discard(tid)
        elif e.kind in (EventKind.INPUTS_REWRITTEN, EventKind.MCP_LISTED) and tid not in held:
            continue
        elif e.kind is EventKind.ARTIFACT_PUBLISHED and "visibility" in e.body:
            waiting.add(e.body["id"])
        elif e.kind is EventKind.ARTIFACT_RELEASED:
            if e.body["artifact_id"] not in waiting:
                continue
            waiting.discard(e.body["artifact_id"])
        out.append(e)
    return out


def _linked(
    evs: list[Event],
    cuts: list[int],
    start: RunState | None = None,
    parked: Parked | None = None,
    by_seq: bool = False,
) -> list[bytes]:
    """The links a checkpoint job stores at each of ``cuts`` (event counts); ``by_seq``:
    its parked views kept as seqs and read back from ``evs`` (as a job reads its log)."""
    if parked is None and by_seq:
        parked = Parked(_reading(evs))
    job = LinkFold(start if start is not None else RunState(), parked)
    out, done = [], job.state.events
    for cut in cuts:
        for e in evs[done:cut]:
            job.apply(e)
        done = max(done, cut)
        out.append(job.link())
    return out


def _chain(evs: list[Event], cuts: list[int], rooted: bool, by_seq: bool) -> list[bytes]:
    """The links at ``cuts``; ``rooted``: the first a full state's snapshot (a resume's,
    ``encode``), from which the job goes on."""
    if not rooted:
        return _linked(evs, cuts, by_seq=by_seq)
    first = encode(fold(evs[: cuts[0]]))
    # As a job decodes it: its artifact views parked as they are read.
    parked = Parked(_reading(evs) if by_seq else None)
    core = decode(first, compact=True, artifacts=parked.take)
    assert core is not None
    return [first, *_linked(evs, cuts[1:], core, parked)]


def _reading(evs: list[Event]) -> Callable[[Sequence[int]], list[Event]]:
    """``events_at`` of a log holding ``evs``."""
    at = {e.seq: e for e in evs}

    def read(seqs: Sequence[int]) -> list[Event]:
        return [at[s] for s in sorted(seqs) if s in at]

    return read


def _same_order(a: RunState, b: RunState) -> None:
    for name in _ORDERED:
        assert list(getattr(a, name)) == list(getattr(b, name)), name
    assert {t: list(ids) for t, ids in a.by_type.items()} == b.by_type


@settings(max_examples=examples(200), deadline=None)
@given(
    task_records(),
    st.lists(st.integers(1, 60), min_size=1, max_size=5),
    st.booleans(),
    st.booleans(),
)
@pytest.mark.slow
def test_the_chain_rebuilds_the_full_fold_from_event_0(
    evs: list[Event], cuts: list[int], rooted: bool, by_seq: bool
) -> None:
    """``by_seq``: the job parks views as seqs and reads those pinned back from the log."""
    cuts = sorted({min(c, len(evs)) for c in cuts} - {0})
    assume(cuts)  # a link at seq 0 is no snapshot (a job stores none)
    links = _chain(evs, cuts, rooted, by_seq)
    if by_seq:  # the same compact states as when the parked views are pickled
        pickled = _chain(evs, cuts, rooted, False)
        assert [decode(a, compact=True) for a in links] == [
            decode(b, compact=True) for b in pickled
        ]
    for n, cut in enumerate(cuts):
        whole = fold(evs[:cut])
        rebuilt = rebuild(links[: n + 1])
        assert rebuilt == whole
        assert rebuilt is not None
        _same_order(rebuilt, whole)
        # Its tail folds on as the full fold does.
        assert fold(evs[cut:], rebuilt) == fold(evs)
        # A resume's decode: the compact fold from event 0. (Either may have let go of
        # an artifact that pending work came to refer to later: the runtime reads those
        # from the log, RunArtifacts; here, from the full fold.)
        compact = decode(links[n], compact=True)
        from_0 = fold(evs[:cut], compact=True)
        assert compact is not None
        for aid, view in compact.artifacts.items():
            assert whole.artifacts[aid] == view
        assert decisions_read(_read(compact, whole)) == decisions_read(_read(from_0, whole))
        # Its executions summed as the compact fold sums them (a full state's first link
        # counts them in the order they ended: the same here, one event per second).
        assert [getattr(compact, f) for f in _SPANS] == [getattr(from_0, f) for f in _SPANS]
        # Without its first link, or with one out of place, there is no chain.
        if n:
            assert rebuild(links[1 : n + 1]) is None
            assert rebuild([links[0], *links[2 : n + 1]]) is None or n == 1
            assert rebuild([*links[:n], None]) is None


def _read(s: RunState, whole: RunState) -> RunState:
    """``s`` with the views of the artifacts it let go of, read as the runtime reads them."""
    return dataclasses.replace(s, artifacts=whole.artifacts)


@pytest.mark.slow  # 20,000 runs folded: a scale test
def test_a_job_holds_one_chunk_of_views_not_the_run() -> None:
    evs = _finished_runs(20_000)
    evs = [dataclasses.replace(e, seq=i + 1) for i, e in enumerate(evs)]
    job = LinkFold(RunState())
    most = 0
    for e in evs:
        job.apply(e)
        held = len(job.state.tasks) + len(job.state.calls) + len(job.state.artifacts)
        held += job.segment.held + len(job.parked.pending)
        most = max(most, held)
    assert most <= 3 * 2048 + 2  # a chunk of views a segment holds, and one parked
    (data,) = [job.link()]
    assert rebuild([data]) == fold(evs)
    assert len(data) < len(encode(fold(evs))) * 1.2


def _large_log(db: Path, units: int, upto: int | None = None) -> tuple[str, list[Event]]:
    """A log of ``units`` x 10 events (model runs with their calls), in units of 10;
    ``upto``: only that many units yet (``_more`` writes the rest)."""
    import asyncio

    from tests.tui_logs import LARGE_RUN, large_events, write_events

    evs = large_events(units)[: None if upto is None else 1 + 10 * upto]
    asyncio.run(write_events(db, [evs[:1]] + [evs[i : i + 10] for i in range(1, len(evs), 10)]))
    with open_store(db).reader() as log:
        return LARGE_RUN, log.events(LARGE_RUN)


def _more(db: Path, units: int, written: int) -> list[Event]:
    """Write the rest of ``_large_log(db, units, written)``; returns the whole log."""
    import asyncio

    from tests.tui_logs import LARGE_RUN, large_events, write_events

    evs = large_events(units)[1 + 10 * written :]
    asyncio.run(write_events(db, [evs[i : i + 10] for i in range(0, len(evs), 10)]))
    with open_store(db).reader() as log:
        return log.events(LARGE_RUN)


def _small_links(monkeypatch: pytest.MonkeyPatch, page: int, segment: int, chunk: int = 64) -> None:
    import flock_es.log.snapshot_job as job_module
    import flock_es.projection.snapshot as snapshot_module

    monkeypatch.setattr(job_module, "PAGE", page)
    monkeypatch.setattr(snapshot_module, "_CHUNK", chunk)
    monkeypatch.setattr(links_module, "SEGMENT_BYTES", segment)


@pytest.mark.slow
def test_jobs_link_a_chain_that_full_readers_rebuild_and_resume_starts_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "large.db"
    run, _ = _large_log(db, 600, upto=300)
    _small_links(monkeypatch, page=250, segment=2_000)
    store = open_store(db)
    # Two jobs, as a live run starts them: the second goes on from the first's last link.
    assert snapshot_now(str(db), run, at_least=1)
    with store.reader() as log:
        first = log.snapshot(run)
    evs = _more(db, 600, 300)
    assert snapshot_now(str(db), run, at_least=1)
    with store.reader() as log:
        last = log.snapshot(run)
        assert first is not None and last is not None and last[0] == evs[-1].seq
        seqs = chain(log, run, last[0])
        assert seqs is not None and len(seqs) > 3  # links stored as the segment filled
        assert first[0] in seqs
    for at in [seqs[0], seqs[len(seqs) // 2], seqs[-1] - 3, seqs[-1]]:
        prefix = [e for e in evs if e.seq is not None and e.seq <= at]
        behind = max(s for s in seqs if s <= at)
        with store.reader() as log:
            state, folded = fold_run(log, run, at)  # show --at
            assert state == fold(prefix)
            _same_order(state, fold(prefix))
            assert folded == sum(1 for e in prefix if e.seq is not None and e.seq > behind)
            compact, folded = fold_run(log, run, at, compact=True)  # resume
            assert decisions_read(compact) == decisions_read(fold(prefix, compact=True))
            assert folded == sum(1 for e in prefix if e.seq is not None and e.seq > behind)


def _chained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, str, list[Event], list[int]]:
    """A log of 300 units and the seqs of the chain of at least three links a job made."""
    db = tmp_path / "large.db"
    run, evs = _large_log(db, 300)
    _small_links(monkeypatch, page=250, segment=2_000)
    assert snapshot_now(str(db), run, at_least=1)
    with open_store(db).reader() as log:
        seqs = chain(log, run, evs[-1].seq or 0)
    assert seqs is not None and len(seqs) >= 3
    return db, run, evs, seqs


def _harm(db: Path, seq: int, flip: int | None) -> None:
    """Flip the byte at ``flip`` of the snapshot at ``seq``, or delete it (None)."""
    import sqlite3

    con = sqlite3.connect(db)
    if flip is None:
        con.execute("DELETE FROM snapshots WHERE seq = ?", (seq,))
    else:
        data = bytearray(
            con.execute("SELECT state FROM snapshots WHERE seq = ?", (seq,)).fetchone()[0]
        )
        data[flip] ^= 0xFF
        con.execute("UPDATE snapshots SET state = ? WHERE seq = ?", (bytes(data), seq))
    con.commit()
    con.close()


@pytest.mark.parametrize("harm", ["missing", "damaged", "stale"])
def test_a_chain_with_a_link_missing_damaged_or_stale_falls_back_to_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, harm: str
) -> None:
    db, run, evs, seqs = _chained(tmp_path, monkeypatch)
    # The middle link: gone, its segment damaged, or its fingerprint another fold's.
    _harm(db, seqs[1], None if harm == "missing" else -40 if harm == "damaged" else 10)
    store = open_store(db)
    with store.reader() as log:
        state, folded = fold_run(log, run)
        # A damaged segment: from the link before it; a link gone or of another fold
        # breaks the chain its headers make: from event 0.
        start = sum((e.seq or 0) <= seqs[0] for e in evs) if harm == "damaged" else 0
        assert state == fold(evs) and folded == len(evs) - start
        # A resume needs only the latest link, which is whole.
        compact, folded = fold_run(log, run, compact=True)
        assert folded == 0 and decisions_read(compact) == decisions_read(fold(evs, compact=True))
        # A job does not extend a chain a link is missing from, or one that another fold
        # wrote: it starts a new one from event 0. (It checks the headers only: a damaged
        # segment is found by the readers, which then fold from the log.)
        restart = start_state(log, run, compact=True, chained=True) == RunState()
        assert restart == (harm != "damaged")
    if restart:  # the new chain's first link is at the end: a full reader starts there
        assert snapshot_now(str(db), run, at_least=1)
        with store.reader() as log:
            assert fold_run(log, run) == (fold(evs), 0)


@pytest.mark.parametrize("part", ["core", "segment"])
def test_readers_start_from_an_older_link_when_the_newest_is_damaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, part: str
) -> None:
    """A damaged newest link costs a resume the events since the link before it, and
    ``show --at`` the events since the last link before the damage, not the whole log."""
    db, run, evs, seqs = _chained(tmp_path, monkeypatch)
    # Right after the header: the compact state's stream; the last bytes: the segment's.
    _harm(db, seqs[-1], HEADER_BYTES + 2 if part == "core" else -40)
    store = open_store(db)
    since = sum((e.seq or 0) > seqs[-2] for e in evs)
    with store.reader() as log:
        compact, folded = fold_run(log, run, compact=True)
        assert folded == since
        assert decisions_read(compact) == decisions_read(fold(evs, compact=True))
        state, folded = fold_run(log, run)
        assert state == fold(evs) and folded == since
        _same_order(state, fold(evs))


_KILLED_JOB = """
import sys
import flock_es.log.snapshot_job as job
import flock_es.projection.snapshot as snapshot
import flock_es.projection.snapshot_links as links
job.PAGE, links.SEGMENT_BYTES, snapshot._CHUNK = 100, 5_000, 64
print("go", flush=True)
raise SystemExit(job.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_job_killed_at_any_moment_leaves_nothing_harmful(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    db = tmp_path / "large.db"
    run, evs = _large_log(db, 400)
    store = open_store(db)
    for delay in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2):
        job = subprocess.Popen(
            [sys.executable, "-c", _KILLED_JOB, str(db), run, "1"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert job.stdout is not None and job.stdout.readline() == "go\n"
        time.sleep(delay)
        job.send_signal(signal.SIGKILL)
        job.wait()
        with store.reader() as log:
            state, _ = fold_run(log, run)
            assert state == fold(evs)
            compact, _ = fold_run(log, run, compact=True)
            assert decisions_read(compact) == decisions_read(fold(evs, compact=True))


def test_a_job_links_a_chain_on_each_backend(
    news_run: tuple[str, str],  # noqa: F811  (the fixture imported above)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Links are found by their headers (a blob's first bytes, ``substr`` on SQLite and
    PostgreSQL alike) and read one at a time."""
    db, run = news_run
    _small_links(monkeypatch, page=7, segment=1, chunk=1)
    assert snapshot_now(db, run, at_least=1)
    store = open_store(db)
    with store.reader() as log:
        evs = log.events(run)
        seqs = chain(log, run, evs[-1].seq or 0)
        assert seqs is not None and len(seqs) > 2  # a link after each page that let go of views
        for at in seqs:
            prefix = [e for e in evs if e.seq is not None and e.seq <= at]
            state, folded = fold_run(log, run, at)
            assert state == fold(prefix) and folded == 0
            _same_order(state, fold(prefix))
