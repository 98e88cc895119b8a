"""The compact fold's own steps: what a runtime state lets go of, and what stays.

The runtime's fold (run, resume, replay) keeps only what decisions need
(``RunState.compact``): a completed task leaves it (``forget_task``; its
executions stay as summed time and merged spans, ``count_span``), and so does
the view of an artifact that is durable and that nothing pending refers to
(``prune_artifacts``); the runtime reads such an artifact from the log.
"""

from __future__ import annotations

import bisect

from flock_es.domain.events import TaskStatus
from flock_es.projection.payload_size import HELD_CHARS
from flock_es.projection.state import RunState, TaskView

__all__ = [
    "PRUNE_AT",
    "SPANS_HELD",
    "compacted",
    "count_span",
    "forget_spans",
    "forget_task",
    "prune_artifacts",
]

PRUNE_AT = 4096
"""The fewest artifact views a compact state holds before it lets go of some."""
SPANS_HELD = 1024
"""The most merged spans of forgotten executions a compact state holds."""

# Enum members bound to module globals for the hot paths (see fold.py).
_SCHEDULED, _RUNNING = TaskStatus.SCHEDULED, TaskStatus.RUNNING


def count_span(s: RunState, start: float, end: float, waited: float = 0.0) -> None:
    """Add one execution to ``finished_busy`` (less the ``waited`` seconds of its model
    calls) and to the merged ``finished_spans``."""
    s.finished_busy += end - start - waited
    if start < s.spans_floor:  # what ran before the floor was summed (_sum_old_spans)
        if end <= s.spans_floor:
            return
        start = s.spans_floor
    spans = s.finished_spans
    if spans and start >= spans[-1][0]:
        # ``_merge_span``'s common case, inlined (once per completed task): a run that
        # began after the newest span did only touches that one.
        last_start, last_end = spans[-1]
        if start <= last_end:  # they overlap: the newest span grows, if at all
            if end > last_end:
                spans[-1] = (last_start, end)
            return
        spans.append((start, end))
    else:
        _merge_span(s, start, end)
    if len(spans) > SPANS_HELD:
        _sum_old_spans(s)


def _sum_old_spans(s: RunState) -> None:
    """Sum the oldest spans into ``finished_active``: those that end before any task
    still to finish started (a task starts after its ``task.scheduled``, and one not
    yet scheduled after the last event), so no later execution overlaps them and
    their union stays exact. If a task running since before them keeps that from
    bounding the list, the older half is summed all the same: an execution that
    overlaps them then counts only from ``spans_floor`` on."""
    spans = s.finished_spans
    # The oldest pending task's start bounds that cutoff from above: if no span ends
    # before it, none ends before the cutoff, and the walk over every task (a large
    # publish's thousands, each time the spans fill up: issue 14) would find nothing.
    n = _ending_before(spans, _first_start(s))
    if n:
        n = _ending_before(spans, _cutoff(s))
    if len(spans) - n > SPANS_HELD:
        n = len(spans) // 2
    if n:
        s.finished_active += sum(end - start for start, end in spans[:n])
        s.spans_floor = spans[n - 1][1]
        del spans[:n]


def _cutoff(s: RunState) -> float:
    """When the earliest task still to finish started (or was scheduled), at most the
    last event's time."""
    cutoff = s.last_ts
    for t in s.tasks.values():
        if t.status is _RUNNING and t.started_at is not None:
            cutoff = min(cutoff, t.started_at)
        elif t.status is _SCHEDULED:
            cutoff = min(cutoff, t.scheduled_at)
    return cutoff


def _first_start(s: RunState) -> float:
    """``_cutoff``'s term for the first task it reads (at least the cutoff)."""
    for t in s.tasks.values():
        if t.status is _RUNNING and t.started_at is not None:
            return min(s.last_ts, t.started_at)
        if t.status is _SCHEDULED:
            return min(s.last_ts, t.scheduled_at)
    return s.last_ts


def _ending_before(spans: list[tuple[float, float]], cutoff: float) -> int:
    """How many of the (sorted, disjoint) ``spans`` end before ``cutoff``."""
    n = bisect.bisect_left(spans, (cutoff, cutoff))
    while n and spans[n - 1][1] >= cutoff:
        n -= 1
    return n


def _merge_span(s: RunState, start: float, end: float) -> None:
    spans = s.finished_spans
    if spans:
        # The common case, a run that began after the newest span did (the spans are
        # sorted and disjoint): it only touches that one, so no search, no insert.
        last_start, last_end = spans[-1]
        if start >= last_start:
            if start > last_end:
                spans.append((start, end))
            elif end > last_end:
                spans[-1] = (last_start, end)
            return
    i = bisect.bisect_left(spans, (start, end))
    # Merge with the neighbours it overlaps (runs end near the newest span: cheap).
    if i > 0 and spans[i - 1][1] >= start:
        i -= 1
        start = spans[i][0]
        end = max(end, spans[i][1])
        del spans[i]
    while i < len(spans) and spans[i][0] <= end:
        end = max(end, spans[i][1])
        del spans[i]
    spans.insert(i, (start, end))


def forget_task(s: RunState, t: TaskView) -> None:
    """A compact state's step for a completed task: only its counts stay.

    Its model and tool calls go too: only a task that runs again (resume, replay)
    is served from them, and a completed task never runs again. Its id goes as
    well: nothing in a log schedules it again or records for it after its
    completion. A task id is a digest of its inputs, and each artifact is decided
    once (at its publish, its ``artifact.decided`` or its release, with what it
    causes in the same transaction), a batch or gate member leaves its buffer when
    scheduled; decisions on a shared log are made under the run's lock on a
    caught-up state, and what a worker records for a task whose lease it lost is
    not committed (``SharedRuns.commit_turn``). So a compact fold ignores the calls
    recorded for tasks it does not hold (``fold_calls.model_called``, ``tool_called``).
    """
    tid = t.id
    del s.tasks[tid]
    s.finished += 1
    if s.calls:  # empty in a run of function agents: no lookups at all
        index = 0
        while s.calls.pop((tid, index), None) is not None:
            index += 1
    if s.tool_calls:
        for key in [k for k in s.tool_calls if k[0] == tid]:
            del s.tool_calls[key]
    if s.rewritten_inputs:
        s.rewritten_inputs.pop(tid, None)
    if s.mcp_tools:
        s.mcp_tools.pop(tid, None)


def forget_spans(s: RunState) -> None:
    """Let go of the executions ``count_span`` summed: a resumed or forked run's summary
    counts what ran in its own process only (``cli.progress.own_work``), not what its
    fold of the log forgot (the tasks finished before a crash, or inherited)."""
    s.finished_busy = 0.0
    s.finished_spans = []
    s.finished_active = 0.0
    s.spans_floor = float("-inf")


def compacted(s: RunState) -> RunState:
    """Make ``s`` compact in place and return it: what a compact fold of the same
    events holds (completed tasks forgotten, counted, their executions summed;
    durable artifacts that nothing pending refers to let go of, their counts kept)."""
    s.compact = True
    done = [t for t in s.tasks.values() if t.status is TaskStatus.COMPLETED]
    # Their executions count as a compact fold counts them, in the order they ended:
    # the summary's busy and active time stay whole after a resume from a full state.
    for t in sorted(done, key=_ended):
        if t.started_at is not None and t.finished_at is not None:
            count_span(s, t.started_at, t.finished_at, t.waited)
    for t in done:
        forget_task(s, t)
    s.by_type = {}
    prune_artifacts(s)
    return s


def _ended(t: TaskView) -> float:
    return t.finished_at if t.finished_at is not None else float("-inf")


def prune_artifacts(s: RunState) -> None:
    """A compact state's step when it holds ``prune_at`` views (or ``prune_chars``
    characters of payload): let go of every view
    that is durable (it has a seq; the runtime then reads it from the log) and that
    nothing pending refers to (``pinned_artifacts``)."""
    pinned = s.pinned_artifacts()
    arts = s.artifacts
    # In place, not a new dict: code holding ``state.artifacts`` keeps seeing the state's.
    for aid in [a for a, v in arts.items() if v.seq is not None and a not in pinned]:
        del arts[aid]
    # The next prune once PRUNE_AT more views (or a quarter of those kept) came: the
    # views held stay near what pending work pins (a 100,000-artifact publish pins all
    # of them until decided), and a prune's cost, linear in what it keeps, is spread
    # over at least a quarter as many new artifacts.
    kept = len(arts)
    s.prune_at = kept + max(PRUNE_AT, kept // 4)
    # Likewise by the characters of their payloads: a few views of documents weigh
    # what thousands of small ones do (``payload_size``).
    chars = sum(v.chars for v in arts.values())
    s.held_chars = chars
    s.prune_chars = chars + max(HELD_CHARS, chars // 4)
