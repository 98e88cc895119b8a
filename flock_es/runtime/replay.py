"""Replay: re-execute a recorded run with the current code, offline, and compare.

The replay walks the recorded log in commit order and folds it with the same
``apply`` as every reader, so it always stands where the live run stood. At
each decision the live run made, it decides again with the current program
and compares:

* every ``artifact.published``: the current subscriptions (``where``
  predicates, batches, routing) are asked what it causes, and the answer must
  equal the recorded ``task.scheduled`` / ``batch.buffered`` /
  ``predicate.failed`` events it caused;
* every finished task: the agent runs again on the recorded inputs (a
  function agent with the current code; a model agent with its current prompt,
  its answers served from the record only), and its outputs must equal the
  recorded ones, in type and payload;
* time-dependent decisions (a batch flushed by its timeout) are followed as
  recorded, not decided again; so is the outside world: a task that failed on a
  provider error that may pass (``transient``) is not run again, and a model call
  the provider refused for good (HTTP 400, 401, 404: its last ``model.attempt``)
  fails again with the recorded error, so its task fails as it did.

The decision checks are ``flock_es.runtime.replay_decisions``'s; this module
walks the record and re-executes the tasks. Nothing is written anywhere: the
replay is pure memory. No model is ever called: a call missing from the record
is a divergence, not a network request.

The record is read as a stream with a short look ahead (``replay_stream``): a
decision and a task's completion sit right after what caused them, in its
transaction (the events sharing a timestamp), so a replay holds the fold plus
a few events, not the whole log, nor a whole transaction (one publish of
100,000 artifacts is a transaction of 900,000 events). What a task's
re-execution needs (its recorded requests, its outcome) is dropped once the
task's completion has been checked.

Example::

    report = await Replayer(events, program.flock.agents).run()
    print("identical" if report.identical else report.divergence)
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from flock_es.domain.events import (
    ArtifactDecided,
    ArtifactPublished,
    Event,
    EventKind,
    RunStarted,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    body_as,
)
from flock_es.errors import RecordedCallChanged, ReplayMiss
from flock_es.log.unfit_event import FOLD_FAULTS, unfit_event
from flock_es.models.base import ModelClient
from flock_es.projection.fold import PRUNE_AT, apply
from flock_es.projection.state import RunState, TaskView
from flock_es.runtime.agent import Agent
from flock_es.runtime.agent_hooks import InputsDiverged, terminate
from flock_es.runtime.board_queries import BoardSource
from flock_es.runtime.executor import Executor
from flock_es.runtime.gc_policy import fewer_collections
from flock_es.runtime.kernel import Kernel, build_index
from flock_es.runtime.kernel_ports import NullRecorder, NullSink
from flock_es.runtime.model_calls import ModelCalls
from flock_es.runtime.orchestrator_hooks import OrchestratorHooks
from flock_es.runtime.payloads import check_payloads
from flock_es.runtime.replay_checks import (
    TaskOutcome,
    completed_divergence,
    failed_divergence,
    output_divergence,
    output_matches,
)
from flock_es.runtime.replay_decisions import DecisionChecks
from flock_es.runtime.replay_report import (
    Divergence,
    ReplayReport,
    timeline_step,
)
from flock_es.runtime.replay_stream import (
    NOTED,
    DeferredViews,
    Lookahead,
    RecordIndex,
    recorded_decisions,
    transactions,
)

__all__ = ["Replayer", "recorded_decisions", "transactions"]

# Enum members as module globals for the per-event paths: in Python 3.11 ``EventKind.X``
# goes through the enum metaclass's attribute hook, about 3x a global's cost.
_COMPLETED = EventKind.TASK_COMPLETED
_PUBLISHED = EventKind.ARTIFACT_PUBLISHED
_SCHEDULED = EventKind.TASK_SCHEDULED
_DECIDED = EventKind.ARTIFACT_DECIDED
_RELEASED = EventKind.ARTIFACT_RELEASED

_AWAITED = frozenset({EventKind.TASK_COMPLETED, EventKind.TASK_FAILED})
_NEVER = 2**62  # a prune_at no state reaches: nowhere to read a view let go of


def _no_client(agent: Agent) -> ModelClient:
    raise ReplayMiss("replay never calls a model")


class Replayer(DecisionChecks):
    """Walks a recorded run (a list or a stream of its events, in seq order);
    ``run()`` returns the report. ``timeline=False`` skips building the timeline
    (``replay --no-timeline``): one line per event is most of a long replay's memory."""

    def __init__(
        self,
        events: Iterable[Event],
        agents: dict[str, Agent],
        state: RunState | None = None,
        hooks: OrchestratorHooks | None = None,
        timeline: bool = True,
        board: BoardSource | None = None,
        where: Path | str | None = None,
    ) -> None:
        stream = iter(events)
        first = next(stream, None)
        self.recorded: Iterator[Event] = (
            itertools.chain([first], stream) if first is not None else stream
        )
        self.first = first
        # The database the events come from, to name one that does not read (None: the
        # events are a list, and what a body lacks is raised as the fold met it).
        self.where = where
        self.agents = agents
        self.timeline = timeline
        # Compact: a completed task leaves the fold (its counts stay), and with the recorded
        # run's database (``board``) durable artifacts nothing pending needs are read
        # from there when asked, so a replay's memory is what the open work needs, not
        # the whole run (issue 14). Without one (a list of events) every view stays.
        if state is None:
            state = RunState(compact=True, prune_at=PRUNE_AT if board is not None else _NEVER)
            if board is None:
                state.prune_chars = _NEVER
        self.state = state
        run_id = first.run_id if first is not None else ""
        started = body_as(first, RunStarted) if first is not None else None
        model = str(started.get("model", "offline")) if started else "offline"
        # Recorded requests by (task, call index), filled as the walk reaches them: a
        # task's calls are recorded before its outputs, where it is re-executed.
        # Completions of the transaction being walked (a task's outputs come first).
        self.index = RecordIndex()
        self.requests, self.completion = self.index.requests, self.index.completion
        self.ahead = Lookahead((), self.index.note)
        # The live run's executor, Temporal-Replayer style: a kernel whose sink records
        # nothing (the state is the fold of the record) and calls served from the record:
        # its answers, and the errors of the calls that got none.
        self.kernel = Kernel(run_id, NullSink(), build_index(agents.values()), self.state)
        self.calls = ModelCalls(
            self.state,
            NullRecorder(),
            _no_client,
            model,
            record_only=True,
            requests=self.requests,
            failures=self.index.failures,
        )
        self.executor = Executor(self.kernel, agents, self.calls)
        self.executor.board = board
        # Orchestrator components re-run on outputs (their vetoes are followed as recorded).
        self.executor.orchestrator = hooks
        self.outcomes: dict[str, TaskOutcome] = {}
        # Views of deferred artifacts, read ahead of their ``artifact.decided``.
        self.deferred = DeferredViews(self.state, self.kernel.artifacts)
        self.report = ReplayReport(run_id=run_id)

    async def run(self) -> ReplayReport:
        with fewer_collections():  # as the live run does: GC was a third of a replay's CPU
            return await self._run()

    async def _run(self) -> ReplayReport:
        t0 = time.perf_counter()
        start = self.first.ts if self.first is not None else 0.0
        # A fork's inherited prefix was decided by its parent's code: replay the
        # parent to check it. Here it is only folded.
        inherited = body_as(self.first, RunStarted).get("inherited", 0) if self.first else 0
        n = 0
        ahead = self.ahead = Lookahead(self.recorded, self.index.note, NOTED)
        unit_ts: float | None = None
        completion = self.completion
        e = None
        try:  # around the walk, not in it: a healthy record's replay pays nothing for it
            while (e := ahead.pop()) is not None:
                if e.ts != unit_ts:
                    if completion:
                        self._end_unit(unit_ts)
                    unit_ts = e.ts
                n += 1
                if 2 <= n <= inherited + 1:
                    apply(self.state, e)
                    continue
                # Most events need nothing awaited: a coroutine each was a tenth of the walk.
                kind = e.kind
                if kind is _COMPLETED and e.body["task_id"] in self.outcomes:
                    div = self._completed(e)  # its outputs came first: nothing to run
                elif kind in _AWAITED or (kind is _PUBLISHED and e.body.get("task_id")):
                    div = await self._step(e)
                else:
                    div = self._step_now(e)
                if div is not None:
                    self._mark(div, e, start)
                    n += ahead.count_rest()
                    break
                if self.timeline:
                    self.report.timeline.append(timeline_step(e, start))
            else:
                self._end_unit(unit_ts)
                self.report.pending_at_end = len(self.state.pending_tasks())
        except FOLD_FAULTS as exc:
            # The event read ahead that ``note`` failed on, else the one being walked.
            bad = ahead.unread or e
            if self.where is None or (damaged := unfit_event(self.where, bad)) is None:
                raise
            raise damaged from exc
        self.report.events = n
        self.report.model_calls = self.calls.made
        self.report.served_calls = self.calls.served
        self.report.seconds = time.perf_counter() - t0
        return self.report

    def _end_unit(self, ts: float | None) -> None:
        """The transaction at ``ts`` is walked: its completed tasks are done with."""
        for task_id in self.index.end_unit(ts):
            self.outcomes.pop(task_id, None)

    def _completion(self, task_id: str, ts: float) -> Event | None:
        """The completion of ``task_id`` in the transaction at ``ts`` (read up to it)."""
        self.ahead.read_unit_until(lambda: task_id in self.completion, ts)
        done = self.completion.get(task_id)
        return done if done is not None and done.ts == ts else None

    def _mark(self, div: Divergence, e: Event, start: float) -> None:
        """End the timeline at the divergence (a decision may sit a few events later)."""
        self.report.identical = False
        self.report.divergence = div
        if not self.timeline:
            return
        for x in [e, *self.ahead.rest_of_unit(e.ts)]:
            step = timeline_step(x, start)
            if (x.seq or 0) >= div.seq:
                step.ok = False
                self.report.timeline.append(step)
                return
            self.report.timeline.append(step)

    # --- one recorded event ------------------------------------------------

    def _step_now(self, e: Event) -> Divergence | None:
        """``_step`` of an event whose check awaits nothing (most of them)."""
        kind = e.kind
        if kind is _SCHEDULED:
            div = self.check_timed_flush(e, body_as(e, TaskScheduled))
            apply(self.state, e)
            return div
        if kind is _PUBLISHED:
            return self._published(e, body_as(e, ArtifactPublished), None)
        return self._decision_step(e)

    def _published(
        self, e: Event, b: ArtifactPublished, div: Divergence | None
    ) -> Divergence | None:
        """Fold an ``artifact.published`` (its output checked: ``div``), then its decisions."""
        apply(self.state, e)
        if b.get("deferred"):
            self.deferred.published(b, e)
            return div  # decided at its artifact.decided, checked there
        return div or self.check_decisions(e)

    async def _step(self, e: Event) -> Divergence | None:
        if e.kind is _PUBLISHED:
            published = body_as(e, ArtifactPublished)
            div = await self._check_output(e) if published.get("task_id") else None
            return self._published(e, published, div)
        if e.kind in _AWAITED:
            return await self._task_step(e)
        return self._step_now(e)

    def _decision_step(self, e: Event) -> Divergence | None:
        """Any other event: a decision to check again, or only folded."""
        if e.kind is _DECIDED:
            self.deferred.read_ahead(body_as(e, ArtifactDecided)["id"])
            apply(self.state, e)
            return self.check_decisions(e)
        if e.kind is _RELEASED:
            # The release is a time decision (followed); what it then triggers is checked.
            return self.check_decisions(e)
        apply(self.state, e)
        return None

    async def _task_step(self, e: Event) -> Divergence | None:
        """A task's end: its re-execution must end the same way."""
        if e.kind is _COMPLETED:
            # What the task's re-execution gave is dropped at the end of the transaction:
            # an output after the completion (a task of several outputs) is checked too.
            div = await self._check_completed(e)
        # A transient failure (the provider was down) is the outside world: followed as
        # recorded, like a time decision; a ``resume --retry-failed`` re-ran the task.
        # Any other failure is re-executed: a model call the provider refused for good
        # (a 400) raises its recorded error again (``ModelCalls.failures``).
        else:
            failed = body_as(e, TaskFailed)
            retried = failed.get("will_retry") or failed.get("transient")
            div = None if retried else await self._check_failed(e)
            if not failed.get("will_retry"):
                self.outcomes.pop(failed["task_id"], None)
            self.index.forget_failures(failed["task_id"], e.seq)
        apply(self.state, e)
        return div

    async def _outcome(self, task_id: str, attempt: int) -> TaskOutcome:
        done = self.outcomes.get(task_id)
        if done is None:
            done = self.outcomes[task_id] = await self._execute(self.state.tasks[task_id], attempt)
            self.report.tasks_replayed += 1
        return done

    async def _execute(self, task: TaskView, attempt: int) -> TaskOutcome:
        agent = self.agents.get(task.agent)
        if agent is None:
            return TaskOutcome(divergence=("agent", task.agent, "not defined in this program"))
        # Exactly as the live run prepares it; the context ids are the ones it recorded.
        run = self.executor.prepare(task, agent, attempt, task.context)
        try:
            outputs = await self.executor.outputs(run)
            check_payloads(outputs)  # the live run refuses them as it records them
        except InputsDiverged as exc:
            return TaskOutcome(divergence=("inputs after components", exc.expected, exc.actual))
        except ReplayMiss as exc:
            return TaskOutcome(divergence=("model call", "a recorded answer", f"{exc}"))
        except RecordedCallChanged as exc:
            what = f"prompt of model call {exc.call_index}"
            return TaskOutcome(divergence=(what, exc.expected, exc.actual))
        except Exception as exc:
            return TaskOutcome(error=str(exc) or type(exc).__name__, error_type=type(exc).__name__)
        finally:
            if agent.utilities or agent.engines:
                await terminate(run)
        return TaskOutcome(outputs=outputs)

    def _agent_of(self, task_id: str) -> str | None:
        task = self.state.tasks.get(task_id)
        if task is not None:
            return task.agent
        done = self.completion.get(task_id)  # a compact fold forgot the completed task
        return str(done.body.get("agent")) if done is not None else None

    def _task_div(self, e: Event, out: TaskOutcome, task_id: str) -> Divergence | None:
        if out.divergence is not None:
            what, exp, got = out.divergence
            agent = self._agent_of(task_id)
            return Divergence(e.seq or 0, f"task {task_id}: {what}", exp, got, agent, task_id)
        return None

    async def _check_output(self, e: Event) -> Divergence | None:
        b = body_as(e, ArtifactPublished)
        tid = b.get("task_id")
        if tid is None:
            return None
        # The completion is most often read already (it follows its last output).
        completion = self.completion.get(tid)
        if completion is None or completion.ts != e.ts:
            completion = self._completion(tid, e.ts)
            if completion is None:
                return None
        done = body_as(completion, TaskCompleted)
        out = self.outcomes.get(tid)
        if out is None:
            if tid not in self.state.tasks:
                return None
            out = await self._outcome(tid, done.get("attempt", 1))
        if out.divergence is not None:
            return self._task_div(e, out, tid)
        if output_matches(b, done, out):
            return None
        return output_divergence(e, b, done, out, self._agent_of(tid) or "?")

    async def _replayed(self, e: Event) -> tuple[str, TaskOutcome] | Divergence | None:
        """Re-execute (once) the task a completion or failure event is about."""
        ended = body_as(e, TaskCompleted)  # task.failed has the same task_id and attempt
        tid = ended["task_id"]
        if tid not in self.state.tasks:
            return None
        out = await self._outcome(tid, int(ended.get("attempt", 1)))
        return self._task_div(e, out, tid) or (tid, out)

    async def _check_completed(self, e: Event) -> Divergence | None:
        got = await self._replayed(e)
        if got is None or isinstance(got, Divergence):
            return got
        return completed_divergence(e, body_as(e, TaskCompleted), *got)

    def _completed(self, e: Event) -> Divergence | None:
        """``_task_step`` of a completion whose task was re-executed already (at its outputs)."""
        b = body_as(e, TaskCompleted)
        tid = b["task_id"]
        div = None
        if tid in self.state.tasks:
            out = self.outcomes[tid]
            div = self._task_div(e, out, tid) or completed_divergence(e, b, tid, out)
        apply(self.state, e)
        return div

    async def _check_failed(self, e: Event) -> Divergence | None:
        got = await self._replayed(e)
        if got is None or isinstance(got, Divergence):
            return got
        return failed_divergence(e, body_as(e, TaskFailed), *got)
