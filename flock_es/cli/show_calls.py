"""``flock-es show``'s text view: a compact fold, and the calls it let go of, from the log.

The text view prints counts, the work still pending and what went wrong; none of
that needs the run's whole state, so it folds compactly (``fold_run(compact=True)``:
from the latest snapshot link's compact state), and its memory is the run's pending
work plus what it prints, not the run's size (a 100,000-artifact run: 1.56 GB for
the full fold). What a compact state lets go of that the view prints are the
model calls answered on a retry and the tool calls of the completed tasks
(``fold_compact.forget_task``); those are read from the log instead, filtered in SQL
(``EventReader.call_records``), up to the state's seq, so the calls recorded before
the snapshot link it started from are listed too.

``--json`` and ``--payloads`` list every artifact, so they keep the full fold.

Example::

    with open_reader(db) as log:
        state, calls = text_view(log, log.resolve_run("latest"), None)
    print_show(show_data(state, False, calls=calls), payloads=False)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flock_es.cli.show_render import ARGS_CLIP, RESULT_CLIP, clip
from flock_es.domain.events import EventKind

if TYPE_CHECKING:
    from flock_es.log.ports import EventReader
    from flock_es.projection.state import RunState

__all__ = ["call_entries", "shown_calls", "text_view"]

Calls = tuple[list[dict[str, Any]], list[dict[str, Any]]]


def text_view(reader: EventReader, run_id: str, at: int | None) -> tuple[RunState, Calls]:
    """The compact state of ``run_id`` up to ``at`` (checked as ``load_run`` checks it)
    and its retried model calls and tool calls (``shown_calls``)."""
    from flock_es.runtime.resume import load_run

    state = load_run(reader, run_id, at, compact=True)
    return state, shown_calls(reader, state)


def shown_calls(reader: EventReader, state: RunState) -> Calls:
    """(retried model calls, tool calls) of ``state``'s run up to its seq, as ``show_data``
    lists them from a full fold of the same events: each call once (its first record,
    as the fold keeps it), in the order of the log.

    A tool call's arguments and result or error come clipped as the text view prints
    them (``clip`` is idempotent, so the view prints the same line): a tool's result may
    be large, and only its first few dozen characters are printed."""
    retried: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] = []
    for is_tool, entry in call_entries(reader, state, clipped=True):
        (tools if is_tool else retried).append(entry)
    return retried, tools


def call_entries(
    reader: EventReader, state: RunState, clipped: bool
) -> Iterator[tuple[bool, dict[str, Any]]]:
    """(whether a tool call, its entry) of each call ``shown_calls`` lists, one at a time
    (``show --json`` writes the tool calls as they come: ``clipped=False``, whole)."""
    # A compact fold counts every answer on its agent (an answer follows its task's
    # scheduling, and a tool call follows the answer that asked for it): none counted,
    # none recorded, and a run of function agents needs no scan of its log.
    if not any(a.calls for a in state.agents.values()):
        return
    seen_calls: set[tuple[str, int]] = set()
    seen_tools: set[tuple[str, int, int]] = set()
    for e in reader.call_records(state.run_id, state.last_seq):
        b = e.body
        tid, index = str(b["task_id"]), int(b["call_index"])
        if e.kind is EventKind.TOOL_CALLED:
            key = (tid, index, int(b["position"]))
            if key not in seen_tools:
                seen_tools.add(key)
                yield True, _tool(b, tid, index, e.seq, clipped)
        elif (tid, index) not in seen_calls:
            seen_calls.add((tid, index))
            task = state.tasks.get(tid)
            yield (
                False,
                {
                    "task_id": tid,
                    # The full fold names the agent of the task; a completed task is gone
                    # from a compact state, and its answer names the same agent.
                    "agent": task.agent if task is not None else b.get("agent"),
                    "call_index": index,
                    "attempt": b.get("attempt", 1),
                    "seq": e.seq,
                },
            )


def _tool(
    b: dict[str, Any], tid: str, index: int, seq: int | None, clipped: bool = True
) -> dict[str, Any]:
    """A tool call as the text view prints it (``clipped``), or as the full fold lists it
    (``show_render._tool_calls``: ``show --json``)."""
    error = b.get("error")
    if error and clipped:
        # Still true once clipped (a blank error clips to ""): the view prints it as
        # "error: ...", which clips alike with the error clipped first or not.
        error = clip(error, RESULT_CLIP) or " "
    if clipped:
        arguments, result = (
            clip(b["arguments"], ARGS_CLIP),
            "" if error else clip(b["result"], RESULT_CLIP),
        )
    else:
        arguments, result = b["arguments"], b["result"]
    return {
        "task_id": tid,
        "agent": b["agent"],
        "call_index": index,
        "position": b["position"],
        "tool": b["tool"],
        "arguments": arguments,
        "result": result,
        "error": error,
        "seq": seq,
    }
