"""``flock-es salvage``: what still reads of a damaged log goes to a new database,
each run up to its first lost event less the unit that ends there, and
``resume`` finishes it there without a model call made twice.

The damage is real: a page of the events b-tree zeroed (found with SQLite's
``dbstat``), the file cut short, a body that does not parse. Every command
runs through the CLI in a subprocess.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from flock_es.log.salvaged_answers import salvaged_answers
from tests.conftest import run_cli
from tests.openai_server import OpenAIServer

PROGRAMS = Path(__file__).parent / "programs"
SWARM = PROGRAMS / "swarm_program.py"
TASKS = 600  # 20 model agents on each of 30 tickets, on the offline model
Row = tuple[str, str, str, float]  # run, kind, body, ts


def swarm_run(db: Path) -> None:
    env = {"SWARM_N": "20", "SWARM_TICKETS": "30"}
    out = run_cli(["run", SWARM, "--db", db, "-q"], env=env)
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("salvage") / "runs.db"
    swarm_run(db)
    swarm_run(db)  # two runs, one after the other
    return db


def rows(db: Path) -> list[Row]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT run_id, kind, body, ts FROM events ORDER BY seq").fetchall()
    finally:
        con.close()


def pages_of(db: Path, name: str, pagetype: str = "%") -> list[int]:
    """The pages of table or index ``name`` in ``db``, in file order (SQLite's dbstat)."""
    con = sqlite3.connect(db)
    try:
        sql = "SELECT pageno FROM dbstat WHERE name = ? AND pagetype LIKE ? ORDER BY pageno"
        return [p for (p,) in con.execute(sql, (name, pagetype))]
    finally:
        con.close()


def zeroed(src: Path, pages: list[int]) -> bytearray:
    """``src``'s bytes with ``pages`` (4 KiB each) zeroed."""
    data = bytearray(src.read_bytes())
    for p in pages:
        data[(p - 1) * 4096 : p * 4096] = bytes(4096)
    return data


def zero_events_page(src: Path, dst: Path, at: float) -> None:
    """Zero the leaf page of the events table that lies ``at`` of the way through them."""
    leaves = pages_of(src, "events", "leaf")
    dst.write_bytes(bytes(zeroed(src, [leaves[int(len(leaves) * at)]])))


def salvaged(damaged: Path, tmp_path: Path) -> tuple[Path, str]:
    out_db = tmp_path / "recovered.db"
    before = damaged.read_bytes()
    out = run_cli(["salvage", out_db, "--db", damaged])
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert damaged.read_bytes() == before  # only read
    return out_db, out.stdout


def by_run(all_rows: list[Row]) -> dict[str, list[Row]]:
    runs: dict[str, list[Row]] = {}
    for r in all_rows:
        runs.setdefault(r[0], []).append(r)
    return runs


def check_prefixes(original: Path, copy: Path) -> dict[str, int]:
    """Each run of ``copy`` is a prefix of the original's that ends where a unit ends;
    returns how many events each run lost."""
    before, after = by_run(rows(original)), by_run(rows(copy))
    short = {}
    for run_id, kept in after.items():
        whole = before[run_id]
        assert [r[1:] for r in kept] == [r[1:] for r in whole[: len(kept)]]
        if len(kept) < len(whole):  # the next event starts another unit
            assert whole[len(kept)][3] != kept[-1][3]
        short[run_id] = len(whole) - len(kept)
    return short


def resume_all(db: Path, original: Path) -> None:
    """Resume each unfinished run of ``db``; each ends with the original's artifacts,
    and each model call (task, call index) is in the log once."""
    runs = check_prefixes(original, db)
    for run_id, lost in runs.items():
        if lost:
            out = run_cli(["resume", run_id, "--db", db, "-q"])
            assert out.returncode == 0, out.stderr
    con, src = sqlite3.connect(db), sqlite3.connect(original)
    try:
        ids = "SELECT id, type FROM artifacts WHERE run_id = ? ORDER BY id"
        seeded = 0  # runs whose copy kept the unit that published their tickets
        for run_id in runs:
            got, want = (c.execute(ids, (run_id,)).fetchall() for c in (con, src))
            if [t for _, t in got].count("Ticket") == [t for _, t in want].count("Ticket"):
                assert got == want
                seeded += 1
            else:  # cut before main() published them: resume never publishes them again
                assert set(got) <= set(want)
        calls = con.execute(
            "SELECT count(*), count(DISTINCT run_id || task_id ||"
            " json_extract(body, '$.call_index')) FROM events WHERE kind = 'model.called'"
        ).fetchone()
        assert calls[0] == calls[1] >= seeded * TASKS
        status = con.execute("SELECT DISTINCT status FROM runs").fetchall()
        assert status == [("completed",)]
    finally:
        con.close()
        src.close()


@pytest.mark.slow  # 3.7 s here, beside its fixture's run (2.3 s): salvage and resume by the CLI
def test_a_lost_page_cuts_the_run_there_and_resume_finishes_it(
    finished: Path, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged.db"
    zero_events_page(finished, damaged, at=0.75)  # in the second run
    assert run_cli(["runs", "--db", damaged]).returncode != 0
    copy, said = salvaged(damaged, tmp_path)
    short = check_prefixes(finished, copy)
    first, second = sorted(short, key=lambda r: said.index(r))
    assert short[first] == 0 and short[second] > 0, short
    assert f"{first}  whole:" in said
    assert f"{second}  cut at seq" in said and f"flock-es resume {second} --db {copy}" in said
    resume_all(copy, finished)


def test_a_file_cut_short_is_salvaged(finished: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "short.db"
    data = finished.read_bytes()
    damaged.write_bytes(data[: len(data) * 6 // 10])
    copy, said = salvaged(damaged, tmp_path)
    assert "cut at seq" in said
    assert sum(check_prefixes(finished, copy).values()) > 0
    resume_all(copy, finished)


def test_a_finished_run_stays_whole_when_the_index_that_tells_runs_apart_is_lost(
    finished: Path, tmp_path: Path
) -> None:
    damaged = tmp_path / "noindex.db"
    data = zeroed(finished, pages_of(finished, "events_run"))
    damaged.write_bytes(bytes(data[: len(data) * 6 // 10]))
    copy, said = salvaged(damaged, tmp_path)
    short = check_prefixes(finished, copy)
    assert sorted(short.values())[0] == 0 and said.count("whole:") == 1, said
    resume_all(copy, finished)


def test_a_body_that_does_not_parse_is_a_lost_event(finished: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "badjson.db"
    shutil.copy(finished, damaged)
    con = sqlite3.connect(damaged)
    con.execute("UPDATE events SET body = '{not json' WHERE seq = 1000")
    con.commit()
    con.close()
    copy, said = salvaged(damaged, tmp_path)
    assert "1 rows lost" in said
    first_run = rows(finished)[0][0]
    short = check_prefixes(finished, copy)
    assert short[first_run] > len(by_run(rows(finished))[first_run]) - 1000
    assert sorted(short.values())[0] == 0  # the second run is whole
    resume_all(copy, finished)


def test_an_intact_file_is_copied_whole(finished: Path, tmp_path: Path) -> None:
    copy, said = salvaged(finished, tmp_path)
    assert "no row lost" in said and said.count("whole:") == 2
    assert rows(copy) == rows(finished)


@pytest.mark.parametrize("case", ["exists", "missing", "garbage", "postgres"])
def test_salvage_refuses_in_one_line(case: str, finished: Path, tmp_path: Path) -> None:
    src, dst = finished, tmp_path / "out.db"
    if case == "exists":
        dst.write_bytes(b"")
    elif case == "missing":
        src = tmp_path / "nowhere.db"
    elif case == "garbage":
        src = tmp_path / "garbage.db"
        src.write_bytes(bytes(range(256)) * 64)
    args: list[str | Path] = ["salvage", dst, "--db", src]
    if case == "postgres":
        args = ["salvage", dst, "--db", "postgresql://postgres@127.0.0.1:5432/test"]
    out = run_cli(args)
    assert out.returncode == 2, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flock-es: error: "), out.stderr
    if case != "exists":
        assert not dst.exists()


def test_a_full_disk_under_the_copy_leaves_no_copy(finished: Path, small_disk: Path) -> None:
    out = run_cli(["salvage", small_disk / "copy.db", "--db", finished])
    assert out.returncode == 2, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "is full" in lines[0] and "copy was removed" in lines[0]
    assert list(small_disk.iterdir()) == []


def call_keys(db: Path, table: str = "events WHERE kind = 'model.called'") -> set[str]:
    con = sqlite3.connect(db)
    try:
        sql = f"SELECT json_extract(body, '$.task_id') || ':' || json_extract(body, '$.call_index') FROM {table}"
        return {k for (k,) in con.execute(sql)}
    finally:
        con.close()


@pytest.mark.slow  # 600 tasks against the loopback model server, run, salvaged and resumed
def test_answers_paid_after_the_cut_are_not_paid_again(tmp_path: Path) -> None:
    """A page lost early in a run against a real provider: the copy stops there, and the
    answers that still read after it are kept aside. The resume pays only for the calls
    whose answers were on the lost page, and the run replays identical."""
    server = OpenAIServer(latency=0.01).start()
    try:
        env = {"OPENAI_API_BASE": server.url, "OPENAI_API_KEY": "sk-test-SALVAGE1234567890"}
        env |= {"SWARM_N": "20", "SWARM_TICKETS": "30"}
        args = ["-m", "openai/test-model", "-q"]
        db = tmp_path / "paid.db"
        out = run_cli(["run", SWARM, "--db", db, *args], env=env, timeout=120)
        assert out.returncode == 0 and server.completed == TASKS, out.stderr
        damaged = tmp_path / "damaged.db"
        zero_events_page(db, damaged, at=0.3)
        copy, said = salvaged(damaged, tmp_path)
        assert "paid answers after it kept for the resume" in said, said
        in_copy = call_keys(copy)
        kept = call_keys(copy, "salvaged_answers")
        assert len(in_copy) < TASKS // 2 and kept and not in_copy & kept
        out = run_cli(["resume", "latest", "--db", copy, *args], env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        # The kept answers' connection closed before the writer: its WAL was dropped.
        assert not copy.with_name(copy.name + "-wal").exists()
        final = call_keys(copy)
        assert len(final) == TASKS
        paid = server.completed - TASKS
        assert paid == len(final - in_copy - kept), said
        assert paid < len(kept) // 10, (paid, len(kept))
    finally:
        server.stop()
    replay = run_cli(["replay", "latest", "--db", copy, "--no-timeline"], env=env)
    assert replay.returncode == 0 and "identical" in replay.stdout, replay.stdout


def tool_keys(db: Path, table: str = "events WHERE kind = 'tool.called'") -> list[str]:
    """(task, call index, position) of each tool result in ``table``, repeats kept."""
    con = sqlite3.connect(db)
    try:
        key = "json_extract(body, '$.{}')"
        parts = " || ':' || ".join(key.format(k) for k in ("task_id", "call_index", "position"))
        return [k for (k,) in con.execute(f"SELECT {parts} FROM {table}")]
    finally:
        con.close()


@pytest.mark.slow  # 600 tasks run, salvaged and resumed through the CLI
def test_tools_that_ran_after_the_cut_do_not_run_again(tmp_path: Path) -> None:
    """Each of 600 tasks calls a tool with a side effect (a line in a file). A page lost
    early cuts the copy before most of them; the results that still read are kept
    aside, and the resume serves each to the same call instead of running the tool
    again. The run replays identical, each tool result in the log once."""
    log = tmp_path / "tools.log"
    env = {"SWARM_N": "20", "SWARM_TICKETS": "30", "TOOL_LOG": str(log)}
    db = tmp_path / "tools.db"
    out = run_cli(["run", SWARM, "--db", db, "-q"], env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert len(log.read_text().splitlines()) == TASKS
    damaged = tmp_path / "damaged.db"
    zero_events_page(db, damaged, at=0.3)
    copy, said = salvaged(damaged, tmp_path)
    assert "tool results after it kept for the resume" in said, said
    in_copy, kept = set(tool_keys(copy)), set(tool_keys(copy, "salvaged_tool_results"))
    assert len(in_copy) < TASKS // 2 and kept and not in_copy & kept
    # An export carries the log only: before the resume, it says what it leaves out.
    export: list[str | Path] = ["export", "latest", "--db", copy, "-o", tmp_path / "run.jsonl"]
    out = run_cli(export)
    assert out.returncode == 0 and "export leaves out the" in out.stderr, out.stderr
    out = run_cli(["resume", "latest", "--db", copy, "-q"], env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    out = run_cli(export)
    assert out.returncode == 0 and "leaves out" not in out.stderr, out.stderr
    final = tool_keys(copy)
    assert len(final) == len(set(final)) == TASKS
    ran_again = len(log.read_text().splitlines()) - TASKS
    assert ran_again == len(set(final) - in_copy - kept), said
    assert ran_again < len(kept) // 10, (ran_again, len(kept))
    replay = run_cli(["replay", "latest", "--db", copy, "--no-timeline"], env=env)
    assert replay.returncode == 0 and "identical" in replay.stdout, replay.stdout


def test_a_copy_an_earlier_salvage_wrote_serves_its_answers(tmp_path: Path) -> None:
    """A copy written before tool results were kept has no table for them: its answers
    are still served, and no tool result is."""
    db = tmp_path / "older.db"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE salvaged_answers (run_id TEXT NOT NULL, task_id TEXT NOT NULL,"
        " call_index INTEGER NOT NULL, body TEXT NOT NULL,"
        " PRIMARY KEY (run_id, task_id, call_index))"
    )
    con.execute("INSERT INTO salvaged_answers VALUES ('r', 't', 0, '{\"response\": \"{}\"}')")
    con.commit()
    con.close()
    kept = salvaged_answers(db, "r")
    assert kept is not None and len(kept) == 1
    try:
        assert kept.pop_tool(("t", 0, 0)) is None
        assert kept.pop(("t", 0)) == {"response": "{}"}
        assert kept.pop(("t", 0)) is None  # once
    finally:
        kept.close()
    assert salvaged_answers(db, "another run") is None


@pytest.mark.slow  # six damaged files, each salvaged and resumed through the CLI
@pytest.mark.parametrize("seed", range(6))
def test_random_lost_pages_leave_prefixes_that_resume_to_the_same_end(
    seed: int, finished: Path, tmp_path: Path
) -> None:
    """Pages lost anywhere past the header (zeroed, or the file cut short): salvage
    says one line or copies prefixes that end where units end, and each resumes to
    the original. (A value changed in place is another matter: SQLite keeps no
    checksum of a row, so a flipped bit that still parses reads as data.)"""
    rnd = random.Random(seed)
    data = bytearray(finished.read_bytes())
    pages = len(data) // 4096
    for _ in range(rnd.randrange(1, 8)):
        p = rnd.randrange(1, pages)
        data[p * 4096 : (p + 1) * 4096] = bytes(4096)
    if rnd.random() < 0.5:
        data = data[: rnd.randrange(pages // 3, pages) * 4096]
    damaged = tmp_path / "random.db"
    damaged.write_bytes(bytes(data))
    out = run_cli(["salvage", tmp_path / "copy.db", "--db", damaged])
    assert "Traceback" not in out.stderr
    if out.returncode != 0:  # nothing to copy: one line says so
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        return
    resume_all(tmp_path / "copy.db", finished)


@pytest.mark.parametrize("url", ["postgresql://postgres:pw@127.0.0.1:5432/x", "mysql://x/y"])
def test_salvage_to_a_url_is_refused_not_made_a_file(
    url: str, finished: Path, tmp_path: Path
) -> None:
    out = run_cli(["salvage", url, "--db", finished], cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("flock-es: error: salvage writes a new SQLite file, not to a URL: ")
    assert ":pw@" not in line
    assert list(tmp_path.iterdir()) == []  # no ./postgresql:/postgres@127.0.0.1:5432/x
