"""The artifacts of one run as the runtime reads them: from the state, else the log.

A compact state (the runtime's: run, resume, replay) keeps an artifact's view
only while it is not yet durable or pending work refers to it
(``RunState.pinned_artifacts``); DESIGN.md: memory does not hold every payload
once it is durable. Every reader of an artifact that may have been let go of
asks here: a view the state holds is returned as is; any other is read from the
log (``flock_es.log.published``) and built by the fold's own ``artifact_view``,
so it equals the view the state held. The log is read only up to the state's
``last_seq``: a replay never sees what its walk has not reached, and an artifact
the live run has applied but not yet committed is the state's.

A full state (``show``, the TUI) holds every view and never reads the log here.

Example::

    arts = RunArtifacts(state, BoardSource(db, run_id))
    view = arts.get("a-1")                       # None if the run has no such artifact
    views = arts.get_many(["a-1", "a-2"])        # those it has, in that order
    notes = arts.of_type("Note")                 # in publication order
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from flock_es.domain.events import ArtifactPublished, Event, EventKind, body_as
from flock_es.log.published import published
from flock_es.projection.fold import artifact_view
from flock_es.projection.state import ArtifactView, RunState
from flock_es.runtime.board_queries import BoardSource

__all__ = ["RunArtifacts"]

_PUBLISHED = EventKind.ARTIFACT_PUBLISHED


class RunArtifacts:
    """Views of one run's artifacts: the state's, else rebuilt from the log (``board``)."""

    def __init__(self, state: RunState, board: BoardSource | None = None) -> None:
        self.state = state
        self.board = board

    def get(self, aid: str) -> ArtifactView | None:
        """The view of artifact ``aid``, or None if the run has none (so far)."""
        state = self.state
        view = state.artifacts.get(aid)
        if view is not None or not state.compact:
            return view
        found = self._log(ids=[aid])
        return found[0] if found else None

    def get_many(self, aids: list[str]) -> list[ArtifactView]:
        """The views of ``aids`` the run has, in the order asked: those the state let
        go of read from the log together (one read, not one per id: a task's context)."""
        held = self.state.artifacts
        missing = [a for a in aids if a not in held]
        found = {v.id: v for v in self._log(ids=missing)} if missing and self.state.compact else {}
        return [v for a in aids if (v := held.get(a) or found.get(a)) is not None]

    def undecided(self, aids: list[str], seqs: dict[str, int] | None = None) -> list[ArtifactView]:
        """``get_many`` for artifacts still to be decided (``RunState.undecided``, or
        ``seqs``: their seqs): those the state does not hold are read from the log by
        their seqs, in one read (a lookup by id is a statement per id, each probing
        every epoch of the run), else by id."""
        state = self.state
        held = state.artifacts
        at_of: Mapping[str, int | None] = state.undecided if seqs is None else seqs
        missing = [a for a in aids if a not in held]
        board = self.board.queries() if self.board is not None and missing else None
        found: dict[str, ArtifactView] = {}
        at = sorted(s for a in missing if (s := at_of.get(a)) is not None and s <= state.last_seq)
        if board is not None and at:
            for e in board.reader.events_at(at):
                if e.kind is _PUBLISHED and e.run_id == state.run_id:
                    view = self._view(e)
                    found[view.id] = view
        rest = [a for a in missing if a not in found]
        if rest:
            found.update((v.id, v) for v in self._log(ids=rest))
        return [v for a in aids if (v := held.get(a) or found.get(a)) is not None]

    def hold_pinned(self) -> int:
        """Put into the state the views pending work pins (``pinned_artifacts``) that
        it does not hold, read from the log together; how many.

        A compact fold holds no view of a deferred artifact (``fold._artifact``), not
        even once its decision made it a task's input or a buffer's member. Whoever
        decides one puts its view in (``Kernel.decide_deferred``, replay), so the
        state holds what pending work pins, as readers of a task's inputs expect
        (its correlation, orchestrator components); a state folded from the log
        (resume) gets the views of those decided before the fold here.
        """
        state = self.state
        if not state.compact:
            return 0
        return self.hold(state.pinned_artifacts())

    def hold(self, aids: Iterable[str], seqs: dict[str, int] | None = None) -> int:
        """Put the views of ``aids`` that a compact state does not hold into it, read
        from the log together (by their ``seqs`` where given: one read); how many. A
        shared run's worker holds those of the artifacts another process decided (its
        ``artifact.decided``, caught up): pending work may pin them, as
        ``Kernel.decide_deferred`` holds its own."""
        held = self.state.artifacts
        missing = [a for a in aids if a not in held]
        if not missing or not self.state.compact:
            return 0
        views = self.undecided(missing, seqs) if seqs else self._log(ids=missing)
        for view in views:
            held.setdefault(view.id, view)
        return len(views)

    def require(self, aid: str) -> ArtifactView:
        """The view of artifact ``aid``; KeyError if the run has none."""
        view = self.get(aid)
        if view is None:
            raise KeyError(aid)
        return view

    def of_type(self, type_name: str | None) -> list[ArtifactView]:
        """The run's artifacts of ``type_name`` in publication order (None: all of them,
        grouped by type in the order the types first appeared, as ``by_type`` holds them)."""
        state = self.state
        if not state.compact:
            arts, by_type = state.artifacts, state.by_type
            names = list(by_type) if type_name is None else [type_name]
            return [arts[a] for t in names for a in by_type.get(t, ())]
        views = self._merged(self._logged(type_name=type_name), type_name=type_name)
        if type_name is not None:
            return views
        grouped: dict[str, list[ArtifactView]] = {}
        for v in views:
            grouped.setdefault(v.type, []).append(v)
        return [v for group in grouped.values() for v in group]

    def of_correlation(self, correlation_id: str) -> list[ArtifactView]:
        """The run's artifacts of ``correlation_id``, in publication order."""
        state = self.state
        if not state.compact:
            return [a for a in state.artifacts.values() if a.correlation_id == correlation_id]
        logged = self._logged(correlation_id=correlation_id)
        return self._merged(logged, correlation_id=correlation_id)

    # --- the log -----------------------------------------------------------

    def _merged(
        self,
        logged: list[ArtifactView] | None,
        type_name: str | None = None,
        correlation_id: str | None = None,
    ) -> list[ArtifactView]:
        """``logged`` (durable, in seq order), then the state's views of the same query
        (of ``type_name``, of ``correlation_id``) that the log does not hold yet
        (applied, not yet committed: newer than any).

        ``logged`` None: the log was not read (the state holds every view), and every
        view held is tested. Otherwise only those the log could not have: not yet
        durable, or past the state's seq. A compact state holds up to ``prune_at``
        views (4,096 and more), and testing each at every start of an agent with
        context (``of_correlation``), through a function call a view, cost about 1.4
        ms a task: 905 runs/s at 4,000 correlations of ``bench/bench_context.py``
        against 1,259 at 1,000 (issue 14). The tests are inline for the same reason.
        """
        state = self.state
        arts = state.artifacts.values()
        if logged is None:
            last, seen = -1, set()
        else:
            last, seen = state.last_seq, {v.id for v in logged}
        rest = [
            v
            for v in arts
            if (v.seq is None or v.seq > last)
            and (correlation_id is None or v.correlation_id == correlation_id)
            and (type_name is None or v.type == type_name)
            and v.id not in seen
        ]
        return rest if logged is None else [*logged, *rest]

    def _log(
        self,
        *,
        ids: list[str] | None = None,
        type_name: str | None = None,
        correlation_id: str | None = None,
    ) -> list[ArtifactView]:
        return self._logged(ids=ids, type_name=type_name, correlation_id=correlation_id) or []

    def _logged(
        self,
        *,
        ids: list[str] | None = None,
        type_name: str | None = None,
        correlation_id: str | None = None,
    ) -> list[ArtifactView] | None:
        """The views of the query up to the state's seq, read from the log; None where
        the log was not read (the state let go of no view, or there is no log)."""
        state = self.state
        if len(state.artifacts) >= sum(state.type_counts.values()):
            return None  # the state let go of none: nothing to read
        board = self.board.queries() if self.board is not None else None
        if board is None or not state.last_seq:
            return None
        events = published(
            board,
            state.run_id,
            state.last_seq,
            ids=ids,
            type_name=type_name,
            correlation_id=correlation_id,
        )
        held = state.artifacts
        return [held.get(view.id) or view for view in (self._view(e) for e in events)]

    def _view(self, e: Event) -> ArtifactView:
        b = body_as(e, ArtifactPublished)
        view = artifact_view(b, e.seq, e.ts, e.size)
        vis = b.get("visibility")
        # Not pinned as unreleased, so an "after" artifact the log holds was released.
        if vis and vis.get("kind") == "after" and view.id not in self.state.unreleased:
            view.released = True
        return view
