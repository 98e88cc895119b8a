"""The kernel: apply -> commit -> act, over one run's state and subscription index.

Decisions need to see the effects of earlier decisions whose commit is still
in flight (group commit keeps many units in flight at once), so events are
folded into ``state`` when they are decided and handed to the log's sink in
that same order. Nothing *acts* on an event before its commit: ``act`` (start
a task, arm a timer, notify a listener) runs only after the sink confirms it.

If a commit fails, the state is ahead of the log; the kernel then halts (no
further event is accepted) and restores ``state`` from the log through its
``restore`` port, in place, before the error reaches anyone. So after a
failure ``state`` is exactly the fold of what is durable.

Example::

    kernel = Kernel(run_id, writer, SubscriptionIndex.build(subs), restore=reload)
    kernel.actor = dispatcher           # told about every committed unit
    await kernel.emit([event])          # apply, commit, act

What the kernel talks to (its sink, actor, listeners) and what model calls
record through are the ports in ``runtime/kernel_ports.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from pydantic import BaseModel

from flock_es.domain import registry
from flock_es.domain.events import (
    ArtifactDecided,
    ArtifactPublished,
    Event,
    EventKind,
    trusted_event,
)
from flock_es.errors import ArtifactValidationError, CommitFailed
from flock_es.projection.decide import SubscriptionIndex, decide_artifact
from flock_es.projection.fold import apply
from flock_es.projection.payload_size import HEAVY_CHARS
from flock_es.projection.state import ArtifactView, RunState
from flock_es.runtime.agent import Agent
from flock_es.runtime.artifacts import RunArtifacts
from flock_es.runtime.kernel_ports import Actor, Listener, Sink
from flock_es.runtime.object_cache import ObjectCache
from flock_es.runtime.payloads import checked_payload

__all__ = ["UNPUBLISHED_TAG", "Kernel", "build_index"]

# Artifacts recorded but not offered to subscribers (``invoke(..., publish_outputs=False)``).
UNPUBLISHED_TAG = "flock-es:unpublished"

# Enum members bound to module globals for the hot paths: in Python 3.11 ``Kind.X``
# goes through the enum metaclass's attribute hook, about 3x a global's cost.
_PUBLISHED = EventKind.ARTIFACT_PUBLISHED
_DECIDED = EventKind.ARTIFACT_DECIDED


def build_index(agents: Iterable[Agent], max_iterations: int | None = None) -> SubscriptionIndex:
    """The subscription index of a program's agents (``max_iterations``: circuit breaker)."""
    agents = list(agents)
    return SubscriptionIndex.build(
        (s for a in agents for s in a.subscriptions),
        allow_self=[a.name for a in agents if a.self_trigger],
        identities=[a.identity() for a in agents],
        max_iterations=max_iterations,
    )


async def _waited(acted: asyncio.Future[None]) -> None:
    await acted  # a coroutine, not the future: callers may spawn it as a task


class Kernel:
    """State, subscription index and the apply -> commit -> act cycle of one run."""

    def __init__(
        self,
        run_id: str,
        sink: Sink,
        index: SubscriptionIndex,
        state: RunState | None = None,
        restore: Callable[[], RunState] | None = None,
    ) -> None:
        self.run_id = run_id
        self.sink = sink
        self.index = index
        self.state = state if state is not None else RunState(run_id=run_id)
        self.state.run_id = run_id
        self.restore = restore
        # Artifact views the compact state let go of are read from the log through here
        # (its board is set once the run has a database: ``Flock.start``, replay).
        self.artifacts = RunArtifacts(self.state)
        self.actor: Actor | None = None
        self.listeners: list[Listener] = []
        # The objects built for consumers, bounded by number and size (``object_cache``).
        self.objects = ObjectCache()
        # Type names ``artifact_event`` found registered (types are never unregistered).
        self.registered: set[str] = set()
        self.halted: Exception | None = None

    # --- apply -> commit -> act --------------------------------------------

    def apply(self, events: list[Event]) -> None:
        """Fold decided events into the state (they are on their way to the sink)."""
        self._check()
        state = self.state
        for e in events:
            apply(state, e)

    def record(self, events: list[Event]) -> None:
        """Apply and queue events that nothing waits on; order with later commits is kept."""
        self.apply(events)
        self.queue(events)

    def queue(self, events: list[Event]) -> None:
        """Queue events already applied that nothing waits on (nothing acts on them)."""
        self._check()
        self.sink.enqueue(events)

    async def emit(self, events: list[Event]) -> None:
        """Apply, commit, then act on what the events decided."""
        self.apply(events)
        await self.commit(events)

    async def commit(self, events: list[Event]) -> None:
        """Commit events already applied, then act on them."""
        await self.submit(events)

    def submit(self, events: list[Event]) -> Coroutine[Any, Any, None]:
        """Queue events already applied for their commit now: this call fixes their
        place in the log (the order they were applied in). Awaiting what it returns
        waits for the commit, then acts on them (``commit``); a caller may queue
        more units meanwhile. On the log's writers (commits are futures) the kernel
        acts from the commit's callback, before the callers of a group commit resume:
        the unit scheduling the next agent was acted on after every earlier caller
        had resumed (issue 14 (a)). A caller cancelled first leaves its unit un-acted."""
        self._check()
        done = self.sink.submit(events)
        if not isinstance(done, asyncio.Future):
            return self._acted(done, events)
        acted = done.get_loop().create_future()
        done.add_done_callback(functools.partial(self._on_commit, events, acted))
        return _waited(acted)

    def _on_commit(
        self, events: list[Event], acted: asyncio.Future[None], done: asyncio.Future[None]
    ) -> None:
        """``_acted`` as the commit's callback: ``acted`` tells the caller."""
        if acted.done():  # the caller was cancelled: nothing acts on the unit (as before)
            return
        if done.cancelled():
            acted.cancel()
            return
        exc = done.exception()
        if exc is None:
            try:
                self.committed(events)
            except Exception as err:  # the caller hears it, as it did awaiting ``_acted``
                exc = err
        elif isinstance(exc, Exception):  # a failed commit, not a cancellation: halt
            self._halt(exc)
        if exc is None:
            acted.set_result(None)
        else:
            acted.set_exception(exc)

    async def _acted(self, done: Awaitable[None], events: list[Event]) -> None:
        try:
            await done
        except Exception as exc:  # not a cancellation: the unit still commits then
            self._halt(exc)
            raise
        self.committed(events)

    async def commit_decided(self, decide: Callable[[], list[Event]]) -> list[Event]:
        """Decide and commit as one step; returns the events.

        On a shared log (``flock-es worker``) the sink runs ``decide`` inside the
        transaction that holds the run's lock, after catching up with what other
        processes committed, so decisions never rest on a stale state. Any other
        sink just commits what ``decide()`` returns.
        """
        submit_built = getattr(self.sink, "submit_built", None)
        if submit_built is None:
            events = decide()
            await self.commit(events)
            return events
        self._check()
        try:
            events = list(await submit_built(decide))
        except Exception as exc:
            self._halt(exc)
            raise
        self.committed(events)
        return events

    def committed(self, events: list[Event]) -> None:
        """After ``events`` (applied) committed: seqs, listeners, then the actor."""
        state = self.state
        arts = state.artifacts
        last = state.last_seq
        published = _PUBLISHED
        added = 0  # characters of the payloads now durable: what their views weigh
        for e in events:
            seq = e.seq
            if e.kind is published:
                # The body through its definition by annotation (mypy checks the key),
                # not body_as's call: this runs for every event of the run.
                b: ArtifactPublished = e.body  # type: ignore[assignment]
                view = arts.get(b["id"])
                if view is not None:
                    view.seq = seq
                    # Its size, as the writer wrote its body (``Event.size``).
                    if size := e.size:
                        view.chars = size
                        added += size
                        if size >= HEAVY_CHARS:  # ``artifact_event`` may hold its object
                            self.objects.weigh(view.id, size)
            if seq is not None and seq > last:
                last = seq
        state.last_seq = last
        # Counted now, let go of by the fold: the next artifact it applies finds the views
        # past ``prune_chars`` and prunes them first (``fold._artifact``), as it does by
        # their number; one trigger for both, and these views are durable by then.
        state.held_chars += added
        for listener in self.listeners:
            listener(events)
        if self.actor is not None:
            self.actor.act(events)

    def check(self) -> None:
        """Raise ``CommitFailed`` if a commit failed: the kernel accepts nothing more."""
        self._check()

    def _check(self) -> None:
        if self.halted is not None:
            raise CommitFailed(
                f"run {self.run_id} stopped: a commit failed: {self.halted}"
            ) from self.halted

    def _halt(self, exc: Exception) -> None:
        """A commit failed: accept nothing more, and make the state the log's again."""
        if self.halted is not None:
            return
        self.halted = exc
        if self.restore is None:
            return
        durable = self.restore()
        for f in dataclasses.fields(RunState):
            setattr(self.state, f.name, getattr(durable, f.name))
        self.objects.clear()

    # --- deciding ----------------------------------------------------------

    def artifact_event(
        self,
        obj: BaseModel,
        aid: str,
        produced_by: str,
        task_id: str | None,
        correlation_id: str | None,
        tags: list[str],
        visibility: dict[str, Any] | None,
        now: float,
        partition_key: str | None = None,
        deferred: bool = False,
        tname: str | None = None,
        depth: int = 0,
    ) -> Event:
        """The ``artifact.published`` event for ``obj`` (its type must be registered);
        ``deferred``: decided later, by ``decide_deferred``; ``tname``: the name of its
        type, if the caller has it already (an output's, for its visibility); ``depth``:
        its place in its chain of agent runs (an output's: its task's depth + 1)."""
        cls = type(obj)
        name = registry.type_name(cls) if tname is None else tname
        if name not in self.registered:  # a set, not ``resolve``'s call per artifact
            if registry.resolve(name) is None:
                raise ArtifactValidationError(
                    f"artifact type {name!r} is not registered: decorate it with @flock_type "
                    "or name it in an agent's .consumes()/.publishes(), so a replay can load it"
                )
            self.registered.add(name)
        # Refused here (NaN, a lone surrogate): the writer would fail the whole commit.
        payload = checked_payload(obj, cls, name)
        if name in self.index.by_type:
            # Only what may be decided or run on: an output nothing consumes (most of
            # them) would push its inputs out of the cache, to be rebuilt from the log.
            self.objects.put(aid, obj)
        body: ArtifactPublished = {
            "id": aid,
            "type": name,
            "payload": payload,
            "produced_by": produced_by,
            "task_id": task_id,
            "correlation_id": correlation_id,
            "tags": tags,
            "visibility": visibility or {"kind": "public"},
        }
        if partition_key is not None:  # absent otherwise: earlier logs stay byte-identical
            body["partition_key"] = partition_key
        if deferred:
            body["deferred"] = True
        if depth:  # absent at 0, as in runs written before ``max_depth``
            body["depth"] = depth
        return trusted_event(self.run_id, _PUBLISHED, body, now)

    def decide(self, artifact_events: list[Event], now: float) -> list[Event]:
        """Apply each artifact event and what it causes; returns all of them, in order."""
        if self.halted is not None:  # ``_check``'s test first: its call once per run
            self._check()
        out: list[Event] = []
        state, index = self.state, self.index
        by_type = index.by_type
        for ev in artifact_events:
            apply(state, ev)
            out.append(ev)
            view = state.artifacts[ev.body["id"]]  # not ``body_as``'s call: once per artifact
            if UNPUBLISHED_TAG in view.tags or view.type not in by_type:
                continue  # nothing consumes it (most outputs): no object, no decision
            caused = decide_artifact(state, index, view, self.decision_obj(view), now)
            for c in caused:
                apply(state, c)
            out.extend(caused)
        return out

    def decide_deferred(self, most: int, now: float) -> list[Event]:
        """Decide up to ``most`` deferred artifacts, oldest first: each one's
        ``artifact.decided`` and what it causes, applied, in order (replay re-decides
        each at its ``artifact.decided``, as it re-decides others at their publish)."""
        self._check()
        out: list[Event] = []
        state, index = self.state, self.index
        chunk = list(itertools.islice(state.undecided, most))
        # A compact state holds no view of an undecided artifact: the chunk's are read
        # from the log together (``RunArtifacts.undecided``: a full state's are held),
        # and held from now on, as a decided artifact's are, while pending work pins them.
        views = {v.id: v for v in self.artifacts.undecided(chunk)}
        held = state.artifacts
        for aid in chunk:
            view = views.get(aid)
            if view is None:
                raise KeyError(f"deferred artifact {aid} is in neither the state nor the log")
            held.setdefault(aid, view)
            marker = trusted_event(self.run_id, _DECIDED, ArtifactDecided(id=aid), now)
            apply(state, marker)
            out.append(marker)
            caused = decide_artifact(state, index, view, self.decision_obj(view), now)
            for c in caused:
                apply(state, c)
            out.extend(caused)
        return out

    def decide_vetoed(
        self, vetoes: list[Event], artifact_events: list[Event], now: float
    ) -> list[Event]:
        """``decide`` after applying ``schedule.vetoed`` events, which lead the unit."""
        self.apply(vetoes)
        return [*vetoes, *self.decide(artifact_events, now)]

    def decision_obj(self, view: ArtifactView) -> BaseModel | None:
        """What ``decide_artifact`` needs of the artifact ``view``: its object if a
        subscriber's ``where`` or gate reads it, else None (none is built)."""
        return self.obj_of(view) if self.index.needs_object(view.type) else None

    def obj(self, aid: str) -> BaseModel:
        """Artifact ``aid`` as an instance of its registered type (cached)."""
        cached = self.objects.get(aid)
        if cached is None:
            cached = self.obj_of(self.artifacts.require(aid))
        return cached

    def obj_of(self, view: ArtifactView) -> BaseModel:
        """``obj(view.id)`` for a view the caller already has (no second lookup)."""
        cached = self.objects.get(view.id)
        if cached is None:
            cached = registry.to_object(view.type, view.payload)
            objects = self.objects
            objects.put(view.id, cached)
            if view.chars >= HEAVY_CHARS:
                objects.weigh(view.id, view.chars)
        return cached
