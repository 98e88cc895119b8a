"""The integrity check at open keeps its time budget, on a file of any size (issue 14).

``integrity.check_integrity`` bounds ``PRAGMA quick_check`` by a budget (0.2 s for a
reader, 1 s for a writer). A progress handler kept it before; SQLite calls one
between VM steps only, and quick_check walks every b-tree page in one step: on a
1.3 GB log every ``flock-es runs`` spent 0.48 s on it whatever the budget, and the
time grew with the file. A timer now interrupts the connection at the budget.

Without wall-clock asserts: a check whose statement would run far past its budget
(each body's JSON checked by a function that sleeps) is stopped by the interrupt,
passes as a check cut short does, and leaves the connection usable; a check with time
to finish still finds damage. That the interrupt stops quick_check inside its page
walk was measured by hand: on that 1.3 GB log a 0.02 s budget took 0.020 s, against
0.48-3.9 s with the progress handler.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from flock_es.errors import DatabaseDamagedError
from flock_es.log.integrity import check_integrity
from tests.test_artifacts_by_seq import Answer, Letter
from tests.test_faults import zero_page
from tests.two_agent_run import two_agent_run


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    d = tmp_path_factory.mktemp("budget")
    asyncio.run(two_agent_run(d / "good.db", Letter, Answer, 2_000))
    bad = d / "bad.db"
    zero_page(d / "good.db", bad)
    return bad


def test_a_check_past_its_budget_is_interrupted(damaged: Path, tmp_path: Path) -> None:
    good = damaged.parent / "good.db"
    con = sqlite3.connect(good)
    calls: list[int] = []

    def slow_json_valid(body: str) -> int:
        calls.append(1)
        time.sleep(0.01)  # 6,000 events: a minute, were it not interrupted
        return 1

    con.create_function("json_valid", 1, slow_json_valid)
    try:
        check_integrity(good, con, 0.2)  # cut short: passes, as on a huge file
        assert 0 < len(calls) < 1_000
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (1,)  # not interrupted
    finally:
        con.close()


def test_a_check_with_time_to_finish_finds_the_damage(damaged: Path) -> None:
    con = sqlite3.connect(damaged)
    try:
        with pytest.raises(DatabaseDamagedError, match="damaged"):
            check_integrity(damaged, con, 30.0)
    finally:
        con.close()
