"""What a replay checks at each recorded decision (the ``Replayer``'s other half).

At an ``artifact.published`` (or ``.decided``, ``.released``) the current
subscriptions decide again on the fold as the live run had it, and the answer
must equal the decisions recorded right after it (``task.scheduled``,
``batch.buffered``, ``predicate.failed``); a batch flushed by its timeout must
flush the same inputs now. Re-executing tasks and comparing their outputs is
``flock_es.runtime.replay``'s.

Example::

    class Replayer(DecisionChecks): ...      # it holds the state, kernel and look ahead
    div = replayer.check_decisions(event)    # None, or where the decisions differ
"""

from __future__ import annotations

from pydantic_core import to_json

from flock_es.domain.describe import describe
from flock_es.domain.events import (
    ArtifactPublished,
    ArtifactReleased,
    Event,
    EventKind,
    ScheduleReason,
    TaskScheduled,
    body_as,
)
from flock_es.domain.registry import to_object
from flock_es.log.event_rows import dumps
from flock_es.projection.decide import decide_artifact, decide_batch_flush, decide_release
from flock_es.projection.fold import apply
from flock_es.projection.state import ArtifactView, RunState
from flock_es.runtime.kernel import UNPUBLISHED_TAG, Kernel
from flock_es.runtime.replay_report import Divergence, ReplayReport
from flock_es.runtime.replay_stream import DeferredViews, Lookahead

__all__ = ["DecisionChecks", "decision_line"]

# Enum members as module globals for the per-event paths: in Python 3.11 ``EventKind.X``
# goes through the enum metaclass's attribute hook, about 3x a global's cost.
_RELEASED = EventKind.ARTIFACT_RELEASED
_DECIDED = EventKind.ARTIFACT_DECIDED

_TIMED = {ScheduleReason.BATCH_TIMEOUT.value, ScheduleReason.BATCH_FLUSH.value}


def decision_line(e: Event) -> str:
    """A decision as compared: its kind and its body, exactly."""
    return f"{e.kind.value} {dumps(e.body)}"


class DecisionChecks:
    """The decision checks of ``Replayer``, on the fold it walks (see the module)."""

    state: RunState
    kernel: Kernel
    deferred: DeferredViews
    ahead: Lookahead
    report: ReplayReport

    def check_timed_flush(self, e: Event, b: TaskScheduled) -> Divergence | None:
        """A batch flushed by its timeout: the same inputs must be flushed now."""
        reason = b.get("reason")
        if reason not in _TIMED:
            return None
        expected = decide_batch_flush(
            self.state, b["agent"], b["sub_index"], ScheduleReason(reason), e.ts
        )
        got = [tuple(body_as(x, TaskScheduled)["inputs"]) for x in expected]
        if got == [tuple(b["inputs"])]:
            return None
        return Divergence(e.seq or 0, "batch flushed by its timeout", b["inputs"], got, b["agent"])

    def check_decisions(self, e: Event) -> Divergence | None:
        released = e.kind is _RELEASED
        aid = (
            body_as(e, ArtifactReleased)["artifact_id"]
            if released
            else body_as(e, ArtifactPublished)["id"]
        )
        view = self.state.artifacts.get(aid)
        if view is None and e.kind is _DECIDED:
            view = self.deferred.take(aid)
            if view is not None:  # held from its decision on, as the live run does
                self.state.artifacts[aid] = view
        if view is None or UNPUBLISHED_TAG in view.tags:
            if released:
                apply(self.state, e)
            return None
        recorded = self.ahead.decisions_after(e)
        kernel = self.kernel
        # A type no subscription consumes causes nothing (``decide_artifact`` returns
        # at once): its object is rebuilt only to check that it still can be, and is
        # not cached, where it would push out the objects tasks still need.
        subscribed = released or bool(kernel.index.by_type.get(view.type))
        try:
            if subscribed or view.id in kernel.objects:
                obj = kernel.obj_of(view)
            else:
                obj = to_object(view.type, view.payload)
        except Exception as exc:
            if released:
                apply(self.state, e)
            return Divergence(
                e.seq or 0,
                f"artifact {aid} cannot be rebuilt",
                view.type,
                str(exc),
                view.produced_by,
            )
        # A live decision sees the artifact and the decisions of those before it in
        # its transaction: exactly what the fold holds at this point of the walk.
        if released:
            decided = decide_release(self.state, kernel.index, aid, obj, e.ts)[1:]
            apply(self.state, e)
        elif subscribed:
            decided = decide_artifact(self.state, kernel.index, view, obj, e.ts)
        else:
            decided = []
        self.report.decisions_checked += 1
        if not recorded and not decided:
            return None
        if len(recorded) == len(decided) and all(
            x.kind is y.kind and to_json(x.body) == to_json(y.body)
            for x, y in zip(recorded, decided, strict=True)
        ):
            return None  # the same lines as ``decision_line``'s, without building them
        return self._decisions_differ(e, view, recorded, decided)

    def _decisions_differ(
        self, e: Event, view: ArtifactView, recorded: list[Event], decided: list[Event]
    ) -> Divergence | None:
        """Where the recorded decisions of ``e`` and the replayed ones first differ."""
        aid = view.id
        exp = [decision_line(x) for x in recorded]
        got = [decision_line(x) for x in decided]
        if exp == got:
            return None
        k = next(
            (
                n
                for n in range(max(len(exp), len(got)))
                if n >= min(len(exp), len(got)) or exp[n] != got[n]
            ),
            0,
        )
        seq = (recorded[k].seq if k < len(recorded) else None) or e.seq or 0
        first = recorded[k] if k < len(recorded) else decided[k]
        expected = [describe(x) for x in recorded]
        actual = [describe(x) for x in decided]
        if expected == actual:  # the difference is in a detail the summary leaves out
            expected, actual = exp, got
        return Divergence(
            seq,
            f"what {view.type} {aid} (seq {e.seq}) triggers",
            expected or "nothing",
            actual or "nothing",
            str(first.body.get("agent")),  # any decision kind: all of them name an agent
        )
