"""Store queries over the artifact read models: one implementation, both backends.

Every query is answered from the read models of schema 3 (``query_models``)
through indexes: a filter on type, producer, correlation or time reads its
``(run_id, column, seq)`` index in publication order; a tag filter starts from
``artifact_tags``. The SQL uses ``?`` placeholders, which ``EventReader.query``
accepts on SQLite and PostgreSQL alike.

Visibility: with a ``viewer`` (an agent's ``Identity``), the artifacts it may not
see are left out of pages, totals, summaries and consumption records. The rule
is ``visible_to``'s (the one place it lives); it only has to be evaluated for
the few artifacts whose visibility is not public (a partial index finds them).

Example::

    with open_store("data/flock-es.db").reader() as log:
        board = BoardQueries(log)
        page, total = board.artifacts(ArtifactFilter(run_id=run, types=("Idea",)), limit=10)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic_core import from_json

from flock_es.domain.visibility import PUBLIC, Identity, visible_to
from flock_es.log.ports import EventReader
from flock_es.log.query_models import EPOCH_BITS, by_key, epoch_in
from flock_es.log.query_values import ArtifactFilter, Consumption, StoredArtifact

__all__ = ["BoardQueries", "where"]

_T = TypeVar("_T")
_CHUNK = 500  # ids per IN (...) list, well under every backend's parameter limit
# The payload is read from the artifact's event (the read model keeps no copy: schema 8).
_COLS = (
    "a.id, a.run_id, a.type, (SELECT e.body FROM events e WHERE e.seq = a.seq), "
    "a.produced_by, a.task_id, a.correlation_id, a.visibility, a.released, a.seq, a.ts"
)


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def _chunks(ids: Sequence[_T]) -> Iterable[Sequence[_T]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _one_of(column: str, values: Sequence[object]) -> str:
    # "= ?" for one value: SQLite's planner (no statistics) then prefers that index.
    return f"{column} = ?" if len(values) == 1 else f"{column} IN ({_marks(values)})"


def where(
    f: ArtifactFilter, hidden: Sequence[int] = (), epochs: Sequence[int] = ()
) -> tuple[str, list[object]]:
    """The ``WHERE`` clause (over ``artifacts a``) and its arguments for ``f``, leaving
    out the artifacts whose seq is in ``hidden`` (seq is in every index: no row lookups).
    ``epochs``: those a correlation filter probes (``BoardQueries.epochs``)."""
    conds: list[str] = []
    args: list[object] = []

    def add(cond: str, *values: object) -> None:
        conds.append(cond)
        args.extend(values)

    if f.run_id is not None:
        add("a.run_id = ?", f.run_id)
    if f.types:
        add(_one_of("a.type", f.types), *f.types)
    if f.produced_by:
        add(_one_of("a.produced_by", f.produced_by), *f.produced_by)
    # The seq bound goes into a probe's subquery where there is one (``by_key``): beside
    # the run's id, an outer ``a.seq <= ?`` made SQLite walk the run's index to it.
    bound = [f.until_seq] if f.until_seq is not None else []
    if f.correlation_id is not None:
        epochs = epochs or (-1,)  # no epoch: the run has no events
        add(
            by_key(f.run_id, "correlation_id", epochs, bool(bound)),
            *epochs,
            f.correlation_id,
            *bound,
        )
        bound = []
    if f.visibility:
        add(_one_of("a.vis_kind", f.visibility), *f.visibility)
    if f.since is not None:
        add("a.ts >= ?", f.since)
    if f.until is not None:
        add("a.ts <= ?", f.until)
    # A tag's seqs come once per query from artifact_tags' (run_id, tag, seq) index (the
    # subquery does not depend on the row); SQLite then probes (run_id, [type,] seq) in
    # seq order, so a rare tag stays cheap and needs no sort.
    if f.run_id is not None:
        tagged = "a.seq {} (SELECT t.seq FROM artifact_tags t WHERE t.run_id = ? AND t.tag = ?{})"
        for tag in f.tags:
            add(tagged.format("IN", " AND t.seq <= ?" if bound else ""), f.run_id, tag, *bound)
            bound = []
        if f.exclude_tag is not None:
            add(tagged.format("NOT IN", ""), f.run_id, f.exclude_tag)
    else:  # every run: one probe of (run_id, seq) per row (a tag row has its artifact's seq)
        probe = "EXISTS (SELECT 1 FROM artifact_tags t WHERE t.run_id = a.run_id AND t.seq = a.seq AND t.tag = ?)"
        for tag in f.tags:
            add(probe, tag)
        if f.exclude_tag is not None:
            add(f"NOT {probe}", f.exclude_tag)
    if bound:  # no probe took it
        add("a.seq <= ?", *bound)
    if hidden:
        add(f"a.seq NOT IN ({_marks(hidden)})", *hidden)
    return (" WHERE " + " AND ".join(conds)) if conds else "", args


def _body(body: object) -> dict[str, Any]:
    """An event's body as a query returns it: JSON text (SQLite), or parsed (PostgreSQL's
    ``json`` column)."""
    return body if isinstance(body, dict) else dict(from_json(str(body)))


def _iso(ts: object) -> str | None:
    return None if ts is None else datetime.fromtimestamp(float(str(ts)), UTC).isoformat()


class BoardQueries:
    """The store queries, over any ``EventReader`` (SQLite or PostgreSQL).

    Example::

        board = BoardQueries(reader)
        art = board.artifact("a-1", run_id="r-1")
        page, total = board.artifacts(ArtifactFilter(run_id="r-1", tags=("urgent",)))
    """

    def __init__(self, reader: EventReader) -> None:
        self.reader = reader
        # (run, viewer) -> (the log's data_version, hidden (id, seq)): a viewer's
        # restricted artifacts are read again only after something was committed.
        self._hidden: dict[tuple[str | None, Identity], tuple[int, list[tuple[str, int]]]] = {}

    def _rows(self, sql: str, args: Sequence[object] = ()) -> list[tuple[object, ...]]:
        return self.reader.query(sql, tuple(args))

    def epochs(self, run_id: str | None, until_seq: int | None = None) -> list[int]:
        """The epochs (``seq >> EPOCH_BITS``) the events of ``run_id`` (of every run if
        None) span, up to ``until_seq``: where a lookup by id must look. Two index reads."""
        # One min and one max per subquery: each is then a single index seek.
        if run_id is None:
            rows = self._rows("SELECT (SELECT min(seq) FROM events), (SELECT max(seq) FROM events)")
        else:
            rows = self._rows(
                "SELECT (SELECT min(seq) FROM events WHERE run_id = ?), "
                "(SELECT max(seq) FROM events WHERE run_id = ?)",
                [run_id, run_id],
            )
        if not rows or rows[0][0] is None or rows[0][1] is None:
            return []
        lo, hi = int(str(rows[0][0])), int(str(rows[0][1]))
        if until_seq is not None:
            hi = min(hi, until_seq)
        return list(range(lo >> EPOCH_BITS, (hi >> EPOCH_BITS) + 1))

    def _where(self, f: ArtifactFilter, viewer: Identity | None) -> tuple[str, list[object]]:
        """``where`` for ``f``, with the viewer's hidden seqs and the correlation's epochs."""
        epochs = self.epochs(f.run_id, f.until_seq) if f.correlation_id is not None else []
        return where(f, self._hidden_seqs(f, viewer), epochs)

    def hidden(self, f: ArtifactFilter, viewer: Identity | None) -> list[tuple[str, int]]:
        """(id, seq) of the artifacts of ``f``'s run(s) that ``viewer`` may not see.

        Reads only the run's restricted artifacts (the ``artifacts_restricted`` partial
        index), whatever else ``f`` asks: those are few, the run's matches may be many.
        """
        if viewer is None:
            return []
        version = self.reader.data_version()
        cached = self._hidden.get((f.run_id, viewer))
        if cached is not None and cached[0] == version:
            return cached[1]
        run = "a.run_id = ? AND " if f.run_id is not None else ""
        rows = self._rows(
            f"SELECT a.id, a.seq, a.visibility, a.released FROM artifacts a WHERE {run}"
            "a.vis_kind <> 'public'",
            [f.run_id] if f.run_id is not None else [],
        )
        out = []
        for aid, seq, vis, released in rows:
            rule = from_json(str(vis)) if vis is not None else PUBLIC
            if not visible_to(rule, viewer, bool(released)):
                out.append((str(aid), int(str(seq))))
        if len(self._hidden) > 64:  # one entry per agent is the usual
            self._hidden.clear()
        self._hidden[(f.run_id, viewer)] = (version, out)
        return out

    def _hidden_seqs(self, f: ArtifactFilter, viewer: Identity | None) -> list[int]:
        return [seq for _, seq in self.hidden(f, viewer)] if viewer is not None else []

    def _tags(self, arts: list[tuple[object, ...]]) -> dict[tuple[str, str], list[str]]:
        # A tag row carries its artifact's seq: (run_id, seq) finds them in order.
        tags: dict[tuple[str, str], list[str]] = {}
        by_run: dict[str, list[int]] = {}
        for r in arts:
            by_run.setdefault(str(r[1]), []).append(int(str(r[9])))
        for run, seqs in by_run.items():
            for part in _chunks(seqs):
                for aid, tag in self._rows(
                    f"SELECT id, tag FROM artifact_tags WHERE run_id = ? AND seq IN ({_marks(part)})",
                    (run, *part),
                ):
                    tags.setdefault((run, str(aid)), []).append(str(tag))
        return tags

    def _materialise(self, rows: list[tuple[object, ...]]) -> list[StoredArtifact]:
        tags = self._tags(rows)
        out = []
        for aid, run, typ, body, by, task, corr, vis, released, seq, ts in rows:
            key = (str(run), str(aid))
            out.append(
                StoredArtifact(
                    id=key[1],
                    run_id=key[0],
                    type=str(typ),
                    payload=_body(body)["payload"],
                    produced_by=str(by),
                    task_id=None if task is None else str(task),
                    correlation_id=None if corr is None else str(corr),
                    tags=tuple(sorted(tags.get(key, ()))),
                    visibility=from_json(str(vis)) if vis is not None else dict(PUBLIC),
                    released=bool(released),
                    seq=int(str(seq)),
                    ts=float(str(ts)),
                )
            )
        return out

    def artifact(
        self,
        artifact_id: str,
        f: ArtifactFilter | None = None,
        viewer: Identity | None = None,
    ) -> StoredArtifact | None:
        """The artifact ``artifact_id`` if ``f`` selects it (and ``viewer`` may see it)."""
        f = f or ArtifactFilter()
        epochs = self.epochs(f.run_id, f.until_seq)
        if not epochs:
            return None
        # The seq bound inside the id's probe (``by_key``), not in the clause beside it.
        bound = [f.until_seq] if f.until_seq is not None else []
        clause, args = self._where(replace(f, until_seq=None), viewer)
        glue = " AND " if clause else " WHERE "
        key = by_key(f.run_id, "id", epochs, bool(bound))
        rows = self._rows(
            f"SELECT {_COLS} FROM artifacts a{clause}{glue}{key} ORDER BY a.seq LIMIT 1",
            [*args, *epochs, artifact_id, *bound],
        )
        return self._materialise(rows)[0] if rows else None

    @staticmethod
    def empty_summary() -> dict[str, Any]:
        """What ``summary`` returns when nothing matches."""
        return {
            "total": 0,
            "by_type": {},
            "by_producer": {},
            "by_visibility": {},
            "tag_counts": {},
            "earliest_created_at": None,
            "latest_created_at": None,
        }

    def artifacts(
        self,
        f: ArtifactFilter,
        *,
        limit: int | None = None,
        offset: int = 0,
        viewer: Identity | None = None,
    ) -> tuple[list[StoredArtifact], int]:
        """One page of the artifacts ``f`` selects, in publication order, and how many
        there are in all (``limit=None``: every one from ``offset`` on)."""
        clause, args = self._where(f, viewer)
        total_row = self._rows(f"SELECT count(*) FROM artifacts a{clause}", args)
        total = int(str(total_row[0][0])) if total_row else 0
        sql = f"SELECT {_COLS} FROM artifacts a{clause} ORDER BY a.seq"
        page_args: list[object] = list(args)
        if limit is not None or offset:
            # PostgreSQL takes LIMIT ALL, SQLite LIMIT -1; a huge number works on both.
            sql += " LIMIT ? OFFSET ?"
            page_args += [limit if limit is not None else 2**62, max(offset, 0)]
        return self._materialise(self._rows(sql, page_args)), total

    def summary(self, f: ArtifactFilter, viewer: Identity | None = None) -> dict[str, Any]:
        """Counts by type, producer, visibility kind and tag, and the time span (Flock's
        ``summarize_artifacts`` keys)."""
        clause, args = self._where(f, viewer)

        # One pass over the matches for the counts and the span; tags from artifact_tags.
        groups = self._rows(
            "SELECT a.type, a.produced_by, a.vis_kind, count(*), min(a.ts), max(a.ts) "
            # vis_kind first: grouping by produced_by first lures SQLite to its index.
            f"FROM artifacts a{clause} GROUP BY a.vis_kind, a.type, a.produced_by",
            args,
        )
        out = self.empty_summary()
        span: list[float] = []
        for typ, by, kind, n, first, last in groups:
            count = int(str(n))
            out["total"] += count
            for key, value in (("by_type", typ), ("by_producer", by), ("by_visibility", kind)):
                out[key][str(value)] = out[key].get(str(value), 0) + count
            span += [float(str(first)), float(str(last))]
        tag_sql = (
            "SELECT t.tag, count(*) FROM artifact_tags t JOIN artifacts a "
            f"ON a.run_id = t.run_id AND a.seq = t.seq{clause} GROUP BY t.tag"
        )
        out["tag_counts"] = {str(k): int(str(n)) for k, n in self._rows(tag_sql, args)}
        out["earliest_created_at"] = _iso(min(span)) if span else None
        out["latest_created_at"] = _iso(max(span)) if span else None
        return out

    def consumptions(
        self,
        run_id: str,
        *,
        artifact_ids: Sequence[str] | None = None,
        agent: str | None = None,
        viewer: Identity | None = None,
    ) -> list[Consumption]:
        """Which tasks took which artifacts as inputs, in scheduling order."""
        sql = "SELECT run_id, artifact_id, task_id, agent, seq, ts FROM consumptions c WHERE "
        if artifact_ids is None:
            mine = [run_id] if agent is None else [run_id, agent]
            rows = self._rows(
                sql + ("run_id = ?" if agent is None else "run_id = ? AND agent = ?"), mine
            )
        else:  # each id in every epoch of the run (consumptions_artifact_e13)
            rows, (cond, values) = [], epoch_in("c", self.epochs(run_id) or [-1])
            for part in _chunks(list(artifact_ids)):
                ids = f"{sql}{cond} AND c.artifact_id IN ({_marks(part)})"
                rows += self._rows(ids, [*values, *part])
        # The run and agent are checked here: named in SQL, they lure the planner to
        # walk their index instead of looking the ids up.
        rows = [r for r in rows if r[0] == run_id and agent in (None, r[3])]
        hidden = {aid for aid, _ in self.hidden(ArtifactFilter(run_id=run_id), viewer)}
        out = [
            Consumption(str(r), str(a), str(t), str(g), int(str(s)), float(str(ts)))
            for r, a, t, g, s, ts in rows
            if str(a) not in hidden
        ]
        return sorted(out, key=lambda c: (c.seq, c.artifact_id))

    def agent_history(
        self, run_id: str, agent: str, viewer: Identity | None = None
    ) -> dict[str, Any]:
        """What ``agent`` produced and consumed in ``run_id``, by type (Flock's
        ``agent_history_summary``)."""
        f = ArtifactFilter(run_id=run_id, produced_by=(agent,))
        produced = self.summary(f, viewer)["by_type"]
        run = ArtifactFilter(run_id=run_id)
        clause, args = self._where(run, viewer)
        consumed = {
            str(k): int(str(n))
            # The agent's inputs are counted first, then joined to the artifacts once (ids
            # have no index of their own: a join probing by id would walk the run per row).
            for k, n in self._rows(
                "SELECT a.type, sum(c.n) FROM (SELECT artifact_id, count(*) AS n FROM "
                "consumptions WHERE run_id = ? AND agent = ? GROUP BY artifact_id) c "
                f"JOIN artifacts a ON a.id = c.artifact_id{clause} GROUP BY a.type",
                [run_id, agent, *args],
            )
        }
        return {
            "produced": {"total": sum(produced.values()), "by_type": produced},
            "consumed": {"total": sum(consumed.values()), "by_type": consumed},
        }
