"""The summary's time line: the speedup only where it measures parallel agent
work, and only this process's own work for forks and resumes."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from flock_es.cli.progress import FAILED_SHOWN, own_work, summary_lines, time_line
from flock_es.domain.events import TaskStatus
from flock_es.projection.fold_compact import compacted
from flock_es.projection.state import RunState, TaskView
from tests.conftest import EXAMPLES, completed_tasks, kill_cli_when, run_cli


def state_with(spans: list[tuple[float, float]]) -> RunState:
    s = RunState(run_id="r-test")
    for i, (start, end) in enumerate(spans):
        t = TaskView(id=f"t{i}", agent=f"a{i}", sub_index=0, inputs=[], reason="match")
        t.status, t.started_at, t.finished_at = TaskStatus.COMPLETED, start, end
        s.tasks[t.id] = t
    return s


def test_busy_sums_executions_and_active_is_their_union() -> None:
    s = state_with([(100.0, 102.0), (100.5, 101.5), (101.0, 103.0), (105.0, 106.0)])
    busy, active = own_work(s, since=None)
    assert busy == 2.0 + 1.0 + 2.0 + 1.0 and active == 3.0 + 1.0


def test_work_before_this_process_started_does_not_count() -> None:
    # a fork inherits its parent's tasks; a resume folds the crashed process's
    s = state_with([(10.0, 60.0), (10.0, 60.0), (100.0, 100.01)])
    busy, active = own_work(s, since=99.0)
    assert busy == pytest.approx(0.01) and active == pytest.approx(0.01)
    assert "speedup" not in time_line(s, wall=0.3, since=99.0)


def test_speedup_shown_for_parallel_work_and_labelled() -> None:
    eight = [(100.0, 101.5)] * 8 + [(101.5, 103.0)]  # the news run with 1.5 s calls
    line = time_line(state_with(eight), wall=3.2, since=99.9)
    assert line.endswith("parallel speedup 4.2× (busy ÷ wall)"), line


def test_speedup_hidden_when_overhead_dominates() -> None:
    quick = [(100.0, 100.01)] * 9  # the offline model: milliseconds of work
    assert "speedup" not in time_line(state_with(quick), wall=0.4, since=99.9)
    # a second of work lost in a 30 s wait for a batch timeout says nothing either
    waited = [(100.0, 100.6), (129.0, 129.6)]
    assert "speedup" not in time_line(state_with(waited), wall=30.0, since=99.9)


def test_time_waiting_for_a_model_slot_is_not_busy() -> None:
    """16 model agents started together against a provider that answers 2 calls at a
    time, in 1 s: each waited for its turn (``waited_ms``), which is not their work."""
    s = state_with([(100.0, 101.0 + i // 2) for i in range(16)])
    for i, t in enumerate(s.tasks.values()):
        t.waited = float(i // 2)
    busy, active = own_work(s, since=None)
    assert busy == pytest.approx(16.0) and active == pytest.approx(8.0)
    assert time_line(s, wall=8.2, since=99.9).endswith("parallel speedup 2.0× (busy ÷ wall)")
    # A compact state (a long run's) counts them as it forgets them: the same time.
    assert own_work(compacted(s), since=None) == pytest.approx((16.0, 8.0))


def test_an_outage_lists_a_few_failed_tasks_and_counts_the_rest() -> None:
    s = state_with([(100.0, 101.0)] * 30)
    for t in s.tasks.values():
        t.status, t.error = TaskStatus.FAILED, "cannot connect"
    lines = summary_lines(s, "interrupted", wall=2.0, db="x.db")
    failed = [ln for ln in lines if ln.startswith("  failed ")]
    assert len(failed) == FAILED_SHOWN + 1, lines
    assert failed[-1] == f"  failed     … {30 - FAILED_SHOWN} more (flock-es show r-test --db x.db)"


def busy_of(stderr: str) -> float:
    m = re.search(r"agents busy ([0-9.]+) s", stderr)
    assert m, stderr
    return float(m.group(1))


@pytest.mark.slow
def test_a_fork_counts_only_its_own_work(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    slow: list[str | Path] = [
        "run",
        EXAMPLES / "news.py",
        "--db",
        db,
        "-q",
        "--model",
        "offline?latency=1",
    ]
    parent = run_cli(slow, cwd=tmp_path)
    assert parent.returncode == 0, parent.stderr
    assert busy_of(parent.stderr) >= 8.0  # eight analysts of a second each, then the editor
    run_id = json.loads(run_cli(["runs", "--db", db, "--json"]).stdout)[0]["run_id"]
    con = sqlite3.connect(db)
    (at,) = con.execute(
        "SELECT max(seq) FROM events WHERE kind = 'task.completed' AND run_id = ?"
        " AND seq < (SELECT max(seq) FROM events WHERE kind = 'task.scheduled')",
        (run_id,),
    ).fetchone()
    con.close()
    child = run_cli(["fork", run_id, "--at", str(at), "--db", db, "-q", "--model", "offline"])
    assert child.returncode == 0, child.stderr
    # only the editor ran here, offline: no analyst's second counts, no speedup claimed
    assert busy_of(child.stderr) < 1.0 and "speedup" not in child.stderr, child.stderr


@pytest.mark.slow  # eight 0.4 s analysts, a kill, then the resume
def test_a_resume_counts_only_its_own_work(tmp_path: Path) -> None:
    """The analysts that finished before the crash are folded compactly (their times
    summed, ``count_span``) and do not count as the resumed process's work."""
    db = tmp_path / "r.db"

    slow = ["run", EXAMPLES / "news.py", "--db", db, "-q", "--model", "offline?latency=0.4"]
    assert kill_cli_when(slow, lambda: completed_tasks(db) >= 8, cwd=tmp_path)
    resumed = run_cli(["resume", "latest", "--db", db, "-q"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "completed" in resumed.stderr
    # the editor's 0.4 s only: not the analysts' 3.2 s before the kill
    assert busy_of(resumed.stderr) < 1.0, resumed.stderr


def test_agents_waiting_for_the_event_loop_are_not_busy(tmp_path: Path) -> None:
    """600 model agents start together on the offline model (no latency), each calling
    a plain-function tool: every task then spends most of the run waiting for the
    event loop, which runs the others, or for one of the few tool threads. That is
    not the agents' work: the summary said ``agents busy 115.16 s · parallel
    speedup 330.7×`` for a 0.35 s run on two cores. A model agent's busy time is its
    model's answering and its tools' running."""
    env = {"SWARM_N": "20", "SWARM_TICKETS": "30", "TOOL_LOG": str(tmp_path / "tools.log")}
    swarm = Path(__file__).parent / "programs" / "swarm_program.py"
    out = run_cli(["run", swarm, "--db", tmp_path / "s.db", "-q"], env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    m = re.search(r"wall ([0-9.]+) s", out.stderr)
    assert m, out.stderr
    # Each agent's work is a few dozen microseconds of answer and a line written.
    assert busy_of(out.stderr) <= max(2 * float(m.group(1)), 1.0), out.stderr
    assert "speedup" not in out.stderr, out.stderr


LONG_ERROR = """
from pydantic import BaseModel
from flock_es import Flock

class Doc(BaseModel):
    text: str

class Parsed(BaseModel):
    n: int

flock = Flock()

def parse(doc: Doc) -> Parsed:
    raise ValueError("could not parse: " + doc.text)

flock.agent("parser").consumes(Doc).publishes(Parsed).with_function(parse)

async def main():
    await flock.publish(Doc(text="lorem ipsum " * 100_000))
    await flock.run_until_idle()
"""


def test_an_error_holding_a_document_is_cut_on_the_summary_and_show(tmp_path: Path) -> None:
    """An error whose message holds the agent's 1.2 MB input printed all of it on the
    run's summary line and on ``show``'s; they print its start and say how much
    more ``show --json`` has (which has it whole)."""
    program, db = tmp_path / "long_error.py", tmp_path / "e.db"
    program.write_text(LONG_ERROR)
    out = run_cli(["run", program, "--db", db, "-q"], cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert len(out.stdout) + len(out.stderr) < 5_000
    assert "characters: flock-es show r-" in out.stderr
    assert "--json" in out.stderr and "has the whole error]" in out.stderr
    shown = run_cli(["show", "--db", db], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert len(shown.stdout) < 5_000 and "has the whole error]" in shown.stdout
    whole = run_cli(["show", "--db", db, "--json"], cwd=tmp_path)
    failed = json.loads(whole.stdout)["task_list"]["failed"]
    assert len(failed[0]["error"]) == len("could not parse: ") + 1_200_000
