"""``flock-es show --json`` and ``--payloads``, in memory bounded by the pending work.

Both list every artifact (``--json`` every task too), so they used to fold the
run's full state and build the whole document in memory: a 20,000-artifact run
(180,000 artifacts, 160,000 tasks) took 780 MB and 7 s for 67 MB of JSON, and the
full fold alone grows by some 13 KB per artifact. Here the run is folded
compactly (what ``show``'s text view folds) in one pass from its first event, and
what a compact state lets go of is written to a temporary SQLite file as it goes:

- each artifact when it is published (its listing never changes after);
- each task when it completes (a compact fold forgets it then, and nothing in a
  log changes a completed task: ``fold_compact.forget_task``).

The document is then written a part at a time, each listed artifact and task
rendered as ``json.dumps(..., indent=2)`` renders it in place: the text is the
same as the full fold's ``show_data`` dumped whole (a test checks it on runs with
batches, gates, retries, tool calls, failures and forks). Tool calls come from
the log, unclipped (``show_calls.shown_calls``).

Example::

    with open_reader(db) as log:
        write_json(log, log.resolve_run("latest"), None, sys.stdout)
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from flock_es.cli.phase_line import PhaseLine
from flock_es.cli.progress import stream_kind
from flock_es.cli.show_calls import call_entries, shown_calls
from flock_es.cli.show_render import artifact_entry, print_show, show_data, task_entry
from flock_es.domain.events import EventKind, TaskStatus
from flock_es.errors import OutputError
from flock_es.log.export import PROGRESS_EVERY, counted
from flock_es.log.unfit_event import FOLD_FAULTS, unfit_event
from flock_es.projection.fold import apply, artifact_view
from flock_es.projection.fold_compact import compacted
from flock_es.projection.snapshot import collector_paused
from flock_es.projection.state import RunState

if TYPE_CHECKING:
    from flock_es.domain.event_bodies import ArtifactPublished
    from flock_es.domain.events import Event
    from flock_es.log.ports import EventReader
    from flock_es.projection.state import TaskView

__all__ = ["Listing", "Writable", "dumps_at", "fold_listing", "print_payloads", "write_json"]

_PUBLISHED = EventKind.ARTIFACT_PUBLISHED
_COMPLETED_EVENT = EventKind.TASK_COMPLETED
_COMPLETED = TaskStatus.COMPLETED
# Rows handed to SQLite at a time, and output text written at a time (characters).
_ROWS = 2048
_WRITE = 1 << 16


# JSON of a value that is neither an object nor an array (``default=str`` as ``show``'s):
# the C encoder. ``json.dumps(..., indent=2)`` runs the pure-Python one, whose nested
# functions are garbage in cycles, one set per call: with the collector paused for the
# fold, rendering 340,000 entries so held 870 MB.
_SCALAR = json.JSONEncoder(default=str).encode
_STR = json.encoder.encode_basestring_ascii  # what the encoder writes a str as
_KEYS = {True: "true", False: "false", None: "null"}


def _scalar(value: object) -> str:
    """``_SCALAR(value)``, the common kinds first (millions of them in a large run)."""
    if isinstance(value, str) and type(value) is str:  # not a str enum: its value
        return _STR(value)
    if isinstance(value, int) and type(value) is int:
        return int.__repr__(value)
    if value is None or isinstance(value, bool):
        return _KEYS[value]
    return _SCALAR(value)


def _key(key: object) -> str:
    """A dict key as ``json.dumps`` writes it (it takes str, int, float, bool and None)."""
    if isinstance(key, str):
        return _STR(key)
    if isinstance(key, bool) or key is None:
        return f'"{_KEYS[key]}"'
    if isinstance(key, (int, float)):
        return f'"{_SCALAR(key).strip(chr(34))}"'
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def dumps_at(value: object, level: int) -> str:
    """``value`` as ``json.dumps(doc, indent=2, default=str)`` renders it ``level``
    levels deep in ``doc``, one value at a time (without the pure-Python encoder).

    Example::

        dumps_at({"a": [1]}, 1)   # '{\\n    "a": [\\n      1\\n    ]\\n  }'
    """
    if isinstance(value, dict):
        if not value:
            return "{}"
        pad = "\n" + "  " * (level + 1)
        key, inner = _key, level + 1
        items = [
            f"{pad}{_STR(k) if type(k) is str else key(k)}: {dumps_at(v, inner)}"
            for k, v in value.items()
        ]
        return "{" + ",".join(items) + "\n" + "  " * level + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        pad = "\n" + "  " * (level + 1)
        items = [pad + dumps_at(v, level + 1) for v in value]
        return "[" + ",".join(items) + "\n" + "  " * level + "]"
    return _scalar(value)


@contextlib.contextmanager
def _spill_errors() -> Iterator[None]:
    """The temporary file's errors (a full or read-only temporary directory) as one line."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        raise OutputError(
            "show cannot keep the run's listing in a temporary file in "
            f"{tempfile.gettempdir()} ({exc}): "
            "free some space there, or set TMPDIR to a directory with room"
        ) from None


class Listing:
    """A run's compact state and, in a temporary file, every artifact it published
    and every task it completed (see the module docstring). Close it when done."""

    def __init__(self, payloads: bool) -> None:
        self.payloads = payloads
        self.state = compacted(RunState())
        with _spill_errors():
            self._dir = tempfile.TemporaryDirectory(prefix="flock-es-show-")
            self._db = sqlite3.connect(Path(self._dir.name) / "listing.db", isolation_level=None)
        with _spill_errors():
            for pragma in ("journal_mode=OFF", "synchronous=OFF", "temp_store=FILE"):
                self._db.execute(f"PRAGMA {pragma}")
            # An artifact is listed once, at its first publish (the fold's rule: one view
            # per id), so the id is the key; ``kind`` numbers its type (in any order).
            self._db.execute(
                "CREATE TABLE artifacts (id TEXT PRIMARY KEY, kind INTEGER, seq INTEGER, doc TEXT)"
            )
            self._db.execute("CREATE TABLE tasks (seq INTEGER, doc TEXT)")  # completed ones
            self._db.execute("BEGIN")
        self._kinds: dict[str, int] = {}
        self._artifacts: list[tuple[str, int, int | None, str]] = []
        self._tasks: list[tuple[int, str]] = []

    def add(self, e: Event) -> None:
        """Fold event ``e``, keeping what the compact fold lets go of."""
        kind = e.kind
        if kind is _COMPLETED_EVENT:
            t = self.state.tasks.get(str(e.body["task_id"]))
            before = t.status if t is not None else None
            apply(self.state, e)
            if t is not None and before is not _COMPLETED and t.status is _COMPLETED:
                self._task_done(t)
            return
        apply(self.state, e)
        if kind is _PUBLISHED:
            self._artifact(e)

    def _task_done(self, t: TaskView) -> None:
        self._tasks.append((t.seq or 0, dumps_at(task_entry(t), 3)))
        if len(self._tasks) >= _ROWS:
            self._flush_tasks()

    def _artifact(self, e: Event) -> None:
        body = cast("ArtifactPublished", e.body)
        # The fold's own view if it holds one (a compact state holds a deferred one later).
        view = self.state.artifacts.get(body["id"]) or artifact_view(body, e.seq, e.ts, e.size)
        entry = artifact_entry(view, self.payloads)
        kind = self._kinds.setdefault(view.type, len(self._kinds))
        self._artifacts.append((view.id, kind, view.seq, dumps_at(entry, 4)))
        if len(self._artifacts) >= _ROWS:
            self._flush_artifacts()

    def _flush_artifacts(self) -> None:
        with _spill_errors():
            sql = "INSERT OR IGNORE INTO artifacts VALUES (?, ?, ?, ?)"
            self._db.executemany(sql, self._artifacts)
        self._artifacts.clear()

    def _flush_tasks(self) -> None:
        with _spill_errors():
            self._db.executemany("INSERT INTO tasks VALUES (?, ?)", self._tasks)
        self._tasks.clear()

    def finish(self) -> None:
        """Store what is still held (call once, after the last event)."""
        self._flush_artifacts()
        self._flush_tasks()
        with _spill_errors():
            # Sorted once, here: tasks complete in another order than they were scheduled.
            self._db.execute("CREATE INDEX listed ON artifacts (kind, seq)")
            self._db.execute("CREATE INDEX scheduled ON tasks (seq)")
            self._db.execute("COMMIT")

    def artifact_types(self) -> list[tuple[str, int, int]]:
        """(type, how many, its number) of each type listed, in the order the fold lists
        them: by its first artifact."""
        names = {k: name for name, k in self._kinds.items()}
        with _spill_errors():
            rows = self._db.execute(
                "SELECT kind, count(*) FROM artifacts GROUP BY kind ORDER BY min(seq)"
            ).fetchall()
        return [(names[k], n, k) for k, n in rows]

    def artifact_docs(self, kind: int) -> Iterator[str]:
        """The rendered entries of the artifacts of type number ``kind``, by seq."""
        with _spill_errors():
            sql = "SELECT doc FROM artifacts WHERE kind = ? ORDER BY seq"
            for (doc,) in self._db.execute(sql, (kind,)):
                yield doc

    def first_completed(self) -> int | None:
        """The scheduling seq of the first task scheduled of those completed (None: none)."""
        with _spill_errors():
            (first,) = self._db.execute("SELECT min(seq) FROM tasks").fetchone()
        return None if first is None else int(first)

    def completed_count(self) -> int:
        """How many completed tasks are listed."""
        with _spill_errors():
            (n,) = self._db.execute("SELECT count(*) FROM tasks").fetchone()
        return int(n)

    def completed_docs(self) -> Iterator[str]:
        """The rendered entries of the completed tasks, in the order they were scheduled."""
        with _spill_errors():
            for (doc,) in self._db.execute("SELECT doc FROM tasks ORDER BY seq"):
                yield doc

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()


def fold_listing(
    reader: EventReader,
    run_id: str,
    until: int | None,
    payloads: bool,
    line: PhaseLine | None = None,
) -> Listing:
    """The ``Listing`` of ``run_id`` up to seq ``until`` (all of it if None); ``line``
    hears how far the reading has come (phase ``reading``), and is cleared after it."""
    listing = Listing(payloads)
    try:
        with collector_paused():
            add = listing.add
            events = reader.iter_events(run_id, until=until)
            if line is not None:
                events = counted(events, "reading", _events_of(reader, run_id, until), line)
            e = None
            try:  # around the loop: a healthy log's fold pays nothing for it
                for e in events:
                    add(e)
            except FOLD_FAULTS as exc:
                if (damaged := unfit_event(reader.path, e)) is None:
                    raise
                raise damaged from exc
        listing.finish()
        if line is not None:
            line.clear()  # what the command prints next starts on a clean line
    except BaseException:
        listing.close()
        raise
    return listing


def _events_of(reader: EventReader, run_id: str, until: int | None) -> int | None:
    """How many events ``fold_listing`` reads: the run's (None if only up to ``until``)."""
    row = reader.run_row(run_id)
    if row is None or row.events <= 0 or (until is not None and until < (row.last_seq or 0)):
        return None  # (a file of an old schema has no count)
    return row.events


class Writable(Protocol):
    """Where ``write_json`` writes: ``sys.stdout``, an open text file, a ``StringIO``."""

    def write(self, text: str, /) -> object: ...


class _Out:
    """Text written to ``out`` in large pieces; ``line`` hears how many of ``total``
    entries (artifacts and tasks) are written (phase ``writing``)."""

    def __init__(self, out: Writable, line: PhaseLine | None = None, total: int = 0) -> None:
        self.out = out
        self.parts: list[str] = []
        self.size = 0
        self.line, self.total, self.entries = line, total, 0

    def entry(self) -> None:
        """One more entry written: the line moves every ``PROGRESS_EVERY``."""
        if self.line is not None and self.entries % PROGRESS_EVERY == 0:
            self.line("writing", self.entries, self.total, "entries")
        self.entries += 1

    def __call__(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size >= _WRITE:
            self.flush()

    def flush(self) -> None:
        self.out.write("".join(self.parts))
        self.parts.clear()
        self.size = 0


def print_payloads(
    reader: EventReader, run_id: str, at: int | None, line: PhaseLine | None = None
) -> None:
    """``show --payloads``: the text view, with every artifact and its payload."""
    listing = fold_listing(reader, run_id, at, True, line)
    try:
        data = _data(reader, listing, at, clipped=True)
        data["artifacts"] = {
            name: {"count": count, "artifacts": map(json.loads, listing.artifact_docs(kind))}
            for name, count, kind in listing.artifact_types()
        }
        print_show(data, payloads=True)
    finally:
        listing.close()


def _data(reader: EventReader, listing: Listing, at: int | None, clipped: bool) -> dict[str, Any]:
    """``show_data`` of the listing's compact state; its tool calls (``clipped``, as the
    text view prints them), or none (``show --json`` writes them as it reads them)."""
    state = listing.state
    if clipped:
        calls = shown_calls(reader, state)
    else:
        calls = ([c for tool, c in call_entries(reader, state, False) if not tool], [])
    before_end = at is not None and at < reader.last_seq(state.run_id)
    return show_data(state, False, before_end, calls)


def write_json(
    reader: EventReader,
    run_id: str,
    at: int | None,
    out: Writable,
    payloads: bool = False,
    line: PhaseLine | None = None,
) -> None:
    """Write ``show --json``'s document for ``run_id`` (up to seq ``at``) to ``out``: the
    text ``json.dumps(show_data(full state, payloads), indent=2, default=str)`` gives,
    and a newline. ``line``: see ``fold_listing``."""
    listing = fold_listing(reader, run_id, at, payloads, line)
    try:
        state = listing.state
        data = _data(reader, listing, at, clipped=False)
        # Written to a file or a pipe, the entries have a line of their own too (9 s for a
        # 2.6M-event run); to the terminal the line would land amid the document.
        writing = line if line is not None and stream_kind(out) != "tty" else None
        types = listing.artifact_types()  # one query, for the count and the listing
        total = 0  # the entries the line counts to: only counted when there is a line
        if writing is not None:
            total = sum(n for _, n, _ in types) + listing.completed_count() + len(state.tasks)
        write = _Out(out, writing, total)
        write("{")
        sep = "\n"
        for key, value in data.items():
            write(f"{sep}  {json.dumps(key)}: ")
            sep = ",\n"
            if key == "artifacts":
                _write_artifacts(write, listing, types)
            elif key == "task_list":
                _write_tasks(write, listing, state)
            elif key == "tool_calls":
                tools = (dumps_at(c, 2) for tool, c in call_entries(reader, state, False) if tool)
                _write_list(write, tools, 1)
            else:
                write(dumps_at(value, 1))
        write("\n}\n")
        write.flush()
        if writing is not None:
            writing("writing", write.entries, write.total, "entries")
            writing.clear()
    finally:
        listing.close()


def _write_artifacts(write: _Out, listing: Listing, types: list[tuple[str, int, int]]) -> None:
    if not types:
        write("{}")
        return
    sep = "{\n"
    for name, count, kind in types:
        write(f'{sep}    {json.dumps(name)}: {{\n      "count": {count},\n      "artifacts": [')
        sep = ",\n"
        _write_items(write, listing.artifact_docs(kind), 8)
        write("\n      ]\n    }")
    write("\n  }")


def _write_tasks(write: _Out, listing: Listing, state: RunState) -> None:
    """``task_list``: the tasks by status, each status where its first task (by
    scheduling) puts it, as the full fold's dict of every task in order has them."""
    groups: dict[str, tuple[int, list[TaskView]]] = {}
    for t in state.tasks.values():  # the tasks a compact state holds: none completed
        groups.setdefault(t.status.value, (t.seq or 0, []))[1].append(t)
    order = sorted((first, status) for status, (first, _) in groups.items())
    first = listing.first_completed()
    if first is not None:
        order.append((first, _COMPLETED.value))
        order.sort()
    if not order:
        write("{}")
        return
    sep = "{\n"
    for _, status in order:
        write(f"{sep}    {json.dumps(status)}: [")
        sep = ",\n"
        if status == _COMPLETED.value:
            docs: Iterator[str] = listing.completed_docs()
        else:
            docs = (dumps_at(task_entry(t), 3) for t in groups[status][1])
        _write_items(write, docs, 6)
        write("\n    ]")
    write("\n  }")


def _write_list(write: _Out, docs: Iterator[str], level: int) -> None:
    """A JSON array ``level`` deep of the rendered ``docs``."""
    first = next(docs, None)
    if first is None:
        write("[]")
        return
    pad = "  " * (level + 1)
    write(f"[\n{pad}{first}")
    _write_items(write, docs, 2 * (level + 1), first=False, entries=False)
    write("\n" + "  " * level + "]")


def _write_items(
    write: _Out, docs: Iterator[str], indent: int, first: bool = True, entries: bool = True
) -> None:
    """``docs`` as the items of an array; ``entries``: each is an artifact or a task."""
    pad = " " * indent
    sep = "\n" if first else ",\n"
    for doc in docs:
        write(f"{sep}{pad}{doc}")
        if entries:
            write.entry()
        sep = ",\n"
