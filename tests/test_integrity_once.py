"""A process checks a log's integrity once, not at every open (issue 14).

A command opens its log several times (a run: its reader and its writer; a
resume: five times), and each bounded check of a large file spent its whole
budget: a run of the news example took 2.3-2.9 s on a log holding a
20,000-artifact run, against 0.6-0.9 s on a new one. A file put in the place of
a checked one, even at the same inode, is checked again; so is a file checked
with a smaller budget (a reader's) before a writer appends to it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flock_es.log import LogWriter, integrity
from flock_es.log import schema as schema_module
from flock_es.log.reader import LogReader
from tests.test_artifacts_by_seq import Answer, Letter
from tests.two_agent_run import two_agent_run


def counted_checks(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The budgets of the integrity checks made from now on."""
    made: list[float] = []
    check = integrity.check_integrity

    def counted(path: Path, con: object, budget_s: float) -> None:
        made.append(budget_s)
        check(path, con, budget_s)  # type: ignore[arg-type]

    monkeypatch.setattr(integrity, "check_integrity", counted)
    return made


async def test_a_log_is_checked_once_a_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "notes.db"
    await two_agent_run(db, Letter, Answer, 2)
    made = counted_checks(monkeypatch)
    LogReader(db, verify=True).close()
    for _ in range(3):
        w = await LogWriter.open(db)
        await w.close()
    LogReader(db, verify=True).close()
    # The reader's short check, then the writer's longer one, and nothing after.
    assert made == [schema_module.READER_CHECK_SECONDS, schema_module.WRITER_CHECK_SECONDS]

    # Another log copied over this one (whatever inode it gets) is checked anew.
    other = tmp_path / "other.db"
    await two_agent_run(other, Letter, Answer, 1)
    made.clear()
    db.unlink()
    shutil.copy(other, db)
    w = await LogWriter.open(db)
    await w.close()
    assert made == [schema_module.WRITER_CHECK_SECONDS]
