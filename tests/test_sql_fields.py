"""The SQL in the log names only fields and kinds that the event definitions define.

mypy cannot see into SQL text, so this reads it: every JSON path
(``json_extract(body, '$.x')`` in SQLite, ``body->>'x'`` in PostgreSQL) and
every quoted event kind in ``flock_es/log`` must exist in
``flock_es/domain/events.py``. The modules themselves build their paths with
``body_field``, which fails at import for a field that is gone; this catches a
path typed by hand.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from flock_es.domain.events import BODIES, EventKind, TaskStarted, body_field
from flock_es.log.schema import DDL
from tests.conftest import ROOT

FIELDS = {
    name
    for definition in BODIES.values()
    for name in definition.__required_keys__ | definition.__optional_keys__  # type: ignore[attr-defined]
}
KINDS = {k.value for k in EventKind}
PATH = re.compile(r"'\$\.(\w+)'|->>?\s*'(\w+)'")
KIND = re.compile(r"'((?:run|artifact|task|model|batch|predicate|gate|join|circuit|tool)\.\w+)'")


def log_sources() -> list[Path]:
    return sorted((ROOT / "flock_es" / "log").rglob("*.py"))


def test_every_json_path_in_the_log_is_a_defined_field() -> None:
    unknown = {
        (p.name, a or b)
        for p in log_sources()
        for a, b in PATH.findall(p.read_text())
        if (a or b) not in FIELDS
    }
    assert not unknown, f"JSON paths to fields no event defines: {sorted(unknown)}"


def test_every_quoted_kind_in_the_log_is_an_event_kind() -> None:
    unknown = {(p.name, k) for p in log_sources() for k in KIND.findall(p.read_text())}
    unknown = {(f, k) for f, k in unknown if k not in KINDS}
    assert not unknown, f"event kinds that do not exist: {sorted(unknown)}"


def test_the_spans_view_is_built_from_the_definitions() -> None:
    con = sqlite3.connect(":memory:")
    con.executescript(DDL)
    [(view,)] = con.execute("SELECT sql FROM sqlite_master WHERE name = 'spans'").fetchall()
    assert f"'$.{body_field(TaskStarted, 'agent')}'" in view
    assert f"'{EventKind.TASK_STARTED.value}'" in view


def test_a_field_that_is_not_defined_is_refused() -> None:
    try:
        body_field(TaskStarted, "attempts")
    except KeyError as exc:
        assert "TaskStarted has no field 'attempts'" in str(exc)
    else:
        raise AssertionError("body_field accepted a field TaskStarted does not define")
