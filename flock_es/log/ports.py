"""The log's ports: what the runtime, the CLI and the TUI need from a backend.

SQLite (``flock_es.log.sqlite_store``) is the embedded default; PostgreSQL is the
scale-out backend. Both implement ``EventStore`` and pass the same inheritable
contract suite (``tests/log_contract.py``). ``open_store`` picks the backend
from a path or URL.

The rules every backend keeps:

- ``seq`` is global, gap-free and in commit order; a reader polling
  ``seq > cursor`` never skips an event that commits late.
- A unit handed to ``EventWriter.append``/``submit``/``enqueue`` is committed
  whole or not at all, together with the read-model rows derived from it
  (``runs``, ``artifacts``), and ``append`` returns only after the commit, so an
  effect that depends on an event happens only after the event is durable.
- Read models are rebuildable from the events alone (``rebuild_read_models``).
- One owner per run: ``claim`` is atomic; a live lease held by another
  process is refused with ``RunOwnedError``; an expired one (or one whose
  process is known dead on this host) is taken over; ``force`` overrides.

Example::

    store = open_store("data/flock-es.db")
    lease = store.claim("r-2026...")
    writer = await store.open_writer()
    await writer.append(events)
    await writer.close()
    store.release(lease)
    with store.reader() as log:
        print(log.last_seq())
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from flock_es.domain.events import Event
from flock_es.errors import DatabaseError
from flock_es.log.pg_url import check_url, safe_url

if TYPE_CHECKING:
    # For annotations only: a process that reads the log (a snapshot job, ``show``)
    # need not load asyncio (a fifth of a snapshot job's start-up); shared_ports
    # imports Lease from here.
    import asyncio

    from flock_es.log.shared_ports import SharedRuns

__all__ = [
    "LEASE_SECONDS",
    "Durability",
    "EventReader",
    "EventRow",
    "EventStore",
    "EventWriter",
    "Lease",
    "RunRow",
    "open_store",
    "store_kind",
    "url_scheme",
]

LEASE_SECONDS = float(os.environ.get("FLOCK_ES_LEASE_SECONDS", "30") or 30)
"""How long a run's lease lasts without a heartbeat (the owner renews it every third)."""


class Durability(StrEnum):
    """What a commit survives (README, "Durability").

    ``full`` (default): a commit carrying a paid result (``model.called``,
    ``tool.called``) is fsynced before ``append`` returns, and with it every
    earlier commit. ``normal``: commits survive a crash of the process, not
    necessarily a power loss (synced at checkpoints only).
    """

    NORMAL = "normal"
    FULL = "full"

    @classmethod
    def choose(cls, value: str | None = None) -> Durability:
        """``value``, else ``$FLOCK_ES_DURABILITY``, else ``full``; ConfigError if unknown."""
        from flock_es.errors import ConfigError

        raw = value or os.environ.get("FLOCK_ES_DURABILITY") or cls.FULL.value
        try:
            return cls(raw.strip().lower())
        except ValueError:
            raise ConfigError(f"--durability must be 'normal' or 'full', not {raw!r}") from None


@dataclass(slots=True, frozen=True)
class RunRow:
    """One row of the ``runs`` read model."""

    run_id: str
    program: str | None
    model: str | None
    started_at: float | None
    finished_at: float | None
    status: str | None
    parent_run: str | None
    fork_seq: int | None
    first_seq: int | None
    last_seq: int | None
    events: int


@dataclass(slots=True, frozen=True)
class Lease:
    """Who owns a run, until when. ``token`` identifies one claim (never shown)."""

    run_id: str
    token: str
    pid: int
    host: str
    since: float
    heartbeat: float
    expires: float
    lease_seconds: float = field(default=LEASE_SECONDS)

    @classmethod
    def mine(cls, run_id: str, lease_seconds: float = LEASE_SECONDS) -> Lease:
        """A fresh lease for this process (not yet claimed)."""
        import socket  # here: only a run that claims its log needs them (not a reader)
        import uuid

        now = time.time()
        return cls(
            run_id=run_id,
            token=uuid.uuid4().hex,
            pid=os.getpid(),
            host=socket.gethostname(),
            since=now,
            heartbeat=now,
            expires=now + lease_seconds,
            lease_seconds=lease_seconds,
        )

    def describe(self) -> str:
        """``pid 123 on host since 08:51:02 UTC``, for one-line errors."""
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        return f"pid {self.pid} on {self.host} since {since}"


EventRow = tuple[int, str, str, float, int, str]
"""An event as the log stores it: seq, run id, kind, ts, schema version, JSON body."""


@runtime_checkable
class EventReader(Protocol):
    """A read-only view of the log; any number may follow a live writer."""

    @property
    def path(self) -> Path | str:
        """The database, for messages: a SQLite file, a PostgreSQL URL without password."""
        ...

    def close(self) -> None: ...
    def __enter__(self) -> EventReader: ...
    def __exit__(self, *exc: object) -> None: ...
    def data_version(self) -> int:
        """Changes whenever another connection committed: the cheap "anything new?" check."""
        ...

    def runs(self) -> list[RunRow]: ...
    def latest_run(self) -> RunRow | None: ...
    def run_row(self, run_id: str) -> RunRow | None:
        """``run_id``'s row of the ``runs`` read model (None if it has none)."""
        ...

    def resolve_run(self, ref: str) -> str:
        """The full run id for ``ref``: an id, a unique prefix, or ``latest``."""
        ...

    def iter_events(
        self, run_id: str, after: int = 0, until: int | None = None, limit: int | None = None
    ) -> Iterator[Event]:
        """One run's events with ``after < seq <= until``, in seq order."""
        ...

    def events(
        self, run_id: str, after: int = 0, until: int | None = None, limit: int | None = None
    ) -> list[Event]: ...
    def event_rows(
        self, run_id: str, after: int = 0, until: int | None = None, limit: int | None = None
    ) -> list[EventRow]:
        """``events``' rows, not decoded (``row_to_event`` decodes one): a checkpoint
        job reads them on one thread and decodes them on another (``log.idle``)."""
        ...

    def events_after(self, cursor: int, limit: int | None = None) -> list[Event]:
        """Events of every run with ``seq > cursor``, in commit order, gap-free."""
        ...

    def events_at(self, seqs: Sequence[int]) -> list[Event]:
        """The events at ``seqs`` (of any run), in seq order; a seq with no event is
        skipped (a compact runtime state reads the artifacts it let go of this way)."""
        ...

    def call_records(self, run_id: str, until: int | None = None) -> Iterator[Event]:
        """The run's ``tool.called`` events and its ``model.called`` events answered on a
        retry (``attempt`` > 1), with ``seq <= until``, in seq order, streamed: what
        ``show`` lists of the calls of the tasks a compact state let go of. Filtered in
        SQL, so a run's other answers (each with its whole request) are never read."""
        ...

    def last_seq(self, run_id: str | None = None) -> int: ...
    def first_seq(self, run_id: str) -> int: ...
    def run_stats(self) -> dict[str, dict[str, object]]:
        """Per-run counters for ``flock-es runs`` (see ``LogReader.run_stats``)."""
        ...

    def owner(self, run_id: str) -> Lease | None:
        """The lease on ``run_id``, expired or not, or None."""
        ...

    def snapshot(self, run_id: str, at: int | None = None) -> tuple[int, bytes] | None:
        """The latest snapshot of ``run_id`` at or before seq ``at`` as (seq, bytes), if any."""
        ...

    def query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """A read-only SQL query with ``?`` placeholders (both backends take them);
        ``flock_es.log.queries`` builds the store queries on it."""
        ...


@runtime_checkable
class EventWriter(Protocol):
    """Appends units of events with group commit; one per process and store."""

    commits: int

    def submit(self, events: list[Event]) -> asyncio.Future[None]:
        """Queue one atomic unit; the future resolves after its commit."""
        ...

    def enqueue(self, events: list[Event]) -> None:
        """Queue one atomic unit without waiting; order with later units is kept."""
        ...

    async def append(self, events: list[Event]) -> None:
        """Commit ``events`` as one unit (with their read-model rows); returns after it."""
        ...

    async def close(self) -> None:
        """Commit what is queued, then close."""
        ...


@runtime_checkable
class EventStore(Protocol):
    """A log backend: readers, one writer, run ownership, maintenance."""

    @property
    def location(self) -> str:
        """Path or URL (without password), for messages."""
        ...

    def reader(self) -> EventReader:
        """A new read-only view (raises DatabaseError if there is no log)."""
        ...

    async def open_writer(
        self, durability: Durability = Durability.FULL, fence: Lease | None = None
    ) -> EventWriter:
        """The writer; creates the schema on first use, atomically. With ``fence``,
        every commit verifies in its transaction that the lease is still held, and
        raises ``RunOwnedError`` (committing nothing) once it is not."""
        ...

    def claim(
        self, run_id: str, *, lease_seconds: float = LEASE_SECONDS, force: bool = False
    ) -> Lease:
        """Take ``run_id`` for this process, or raise ``RunOwnedError`` naming the owner."""
        ...

    def heartbeat(self, lease: Lease) -> Lease:
        """Extend ``lease``; raises ``RunOwnedError`` if someone took it over."""
        ...

    def release(self, lease: Lease) -> None:
        """Give ``lease`` up (a no-op if it was taken over)."""
        ...

    async def open_shared(self) -> SharedRuns:
        """Task leases and serialised commits for workers sharing this log."""
        ...

    def save_snapshot(self, run_id: str, seq: int, data: bytes) -> None:
        """Store ``data``, a snapshot of the fold of ``run_id`` up to ``seq``."""
        ...

    def rebuild_read_models(self) -> int:
        """Re-derive every read model from the events alone; returns events read."""
        ...

    def check(self) -> None:
        """A cheap integrity check; raises DatabaseError naming the damage."""
        ...


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def url_scheme(text: str) -> str | None:
    """The scheme of a ``scheme://...`` text, lower-cased; None for a path."""
    m = _SCHEME.match(text)
    return None if m is None else m.group(1).lower()


def store_kind(url_or_path: str | os.PathLike[str]) -> str:
    """``sqlite`` or ``postgresql`` for a location, or DatabaseError for anything else."""
    text = os.fspath(url_or_path)
    scheme = url_scheme(text)
    if scheme is None or scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        check_url(text)  # a bad port or host: one line here, not a traceback on first use
        return "postgresql"
    raise DatabaseError(
        f"unsupported database URL scheme {scheme!r} in {safe_url(text)} "
        "(use a file path, sqlite:///PATH or postgresql://...)"
    )


def sqlite_path(url_or_path: str | os.PathLike[str]) -> Path:
    """The file behind a plain path or a ``sqlite:///PATH`` URL."""
    text = os.fspath(url_or_path)
    if text.lower().startswith("sqlite://"):
        rest = text[len("sqlite://") :]
        # sqlite:///relative/x.db -> relative; sqlite:////abs/x.db -> /abs (SQLAlchemy's rule)
        return Path(rest[1:] if rest.startswith("/") else rest)
    return Path(text)


def open_store(
    url_or_path: str | os.PathLike[str], *, readonly: bool = False, checked: bool = False
) -> EventStore:
    """The store for a path, ``sqlite:///PATH`` or ``postgresql://...`` URL.

    ``checked``: a SQLite file another process of this run already checked and writes
    to (a checkpoint job's, started by the run): no integrity check before reading or
    writing it (``integrity.verify``: up to some 1.6 s of CPU on a 1 GB file, per job).

    Example::

        store = open_store("sqlite:///data/flock-es.db", readonly=True)
    """
    kind = store_kind(url_or_path)
    if kind == "sqlite":
        from flock_es.log.sqlite_store import SqliteStore

        return SqliteStore(sqlite_path(url_or_path), readonly=readonly, checked=checked)
    import importlib

    try:
        # psycopg comes with the `postgres` extra; the store module imports it.
        postgres = importlib.import_module("flock_es.log.postgres_store")
    except ImportError as exc:
        raise DatabaseError(
            f"{safe_url(os.fspath(url_or_path))} needs the PostgreSQL driver "
            f"({exc.name or exc}): pip install 'flock-es[postgres]'"
        ) from None
    store: EventStore = postgres.open_postgres_store(os.fspath(url_or_path), readonly=readonly)
    return store
