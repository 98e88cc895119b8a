"""The run's lifecycle as ``Flock`` drives it: ``start`` opens the log and wires
the kernel, engine, hooks and checkpoints; ``run_until_idle`` waits for the
work; ``close`` records ``run.finished`` and releases all of it.

A mixin of :class:`flock_es.runtime.flock.Flock`, apart from its declaration
and publish API because this is the part that owns the run's resources (the
writer, the checkpoint job, the board's connection, MCP servers) and the order
they open and close in; ``flock-es worker`` uses ``kernel_for`` alone. Example::

    flock = Flock()
    engine = await flock.start()       # implicit in the first publish
    await flock.run_until_idle()
    status = await flock.close()
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from flock_es.domain.events import RunStatus
from flock_es.errors import UserError
from flock_es.log.backends import DbRef, open_reader
from flock_es.log.ports import Durability, EventWriter, Lease, open_store
from flock_es.log.salvaged_answers import SalvagedAnswers
from flock_es.models.base import ModelClient
from flock_es.models.mcp_client import McpServers
from flock_es.models.precise_timers import make_timers_precise
from flock_es.models.retry import RetryPolicy
from flock_es.projection.fold import fold
from flock_es.projection.state import RunState
from flock_es.runtime.agent import Agent
from flock_es.runtime.board_queries import BoardSource
from flock_es.runtime.checkpoints import FIRST_CHECKPOINT, Checkpoints
from flock_es.runtime.engine import Engine, ShareHook
from flock_es.runtime.gc_policy import fewer_collections
from flock_es.runtime.kernel import Kernel, build_index
from flock_es.runtime.kernel_ports import Listener, Sink
from flock_es.runtime.model_agent import warm_schemas
from flock_es.runtime.model_calls import ModelCalls
from flock_es.runtime.model_clients import ModelClients
from flock_es.runtime.orchestrator_hooks import OrchestratorHooks
from flock_es.runtime.program_import import check_not_importing
from flock_es.runtime.run_boundaries import closing_status, program_path, run_started_event

__all__ = ["RunLifecycle"]


class RunLifecycle:
    """Start, wait for and close the run a ``Flock`` declares (see the module docstring)."""

    # Set by Flock.__init__ (and continue_from); declared here so mypy checks their use.
    model: str
    agents: dict[str, Agent]
    run_id: str
    db_path: DbRef
    program: Path | None
    parent_run: str | None
    fork_seq: int | None
    max_agent_iterations: int | None
    max_depth: int | None
    once_per_agent: bool
    reset_circuit_at_idle: bool
    retry: RetryPolicy | None
    max_concurrent_calls: int | None
    durability: Durability
    lease: Lease | None
    share: ShareHook | None
    snapshot_lag: int
    stopped_waiting: bool
    failed_while_waiting: bool
    mcp_servers: McpServers
    clients: ModelClients
    _engine: Engine | None
    _writer: EventWriter | None
    _listeners: list[Listener]
    _checkpoints: Checkpoints | None
    _initial_state: RunState | None
    _recorded_requests: dict[tuple[str, int], dict[str, Any]] | None
    _salvaged_answers: SalvagedAnswers | None
    _closed: bool

    if TYPE_CHECKING:
        # Provided by Flock; declared here so mypy checks the calls below.
        @property
        def state(self) -> RunState: ...

        def orchestrator_hooks(self) -> OrchestratorHooks | None: ...

    def _client(self, agent: Agent) -> ModelClient:
        return self.clients.for_agent(agent, self.model)

    @property
    def calls_models(self) -> bool:
        """Whether this process makes the run's model calls: not one that only publishes
        and waits (``--no-execute``), whose workers make them."""
        return self.share is None or self.share.execute

    def check_models(self) -> None:
        """Fail fast on an unknown provider or a missing API key, before any work; then,
        if this process makes the calls, start what the first ones need (litellm's
        import: seconds of CPU that a run that only publishes would take from the
        workers starting beside it)."""
        self.clients.check(self.agents.values(), self.model, prepare=self.calls_models)

    async def start(self) -> Engine:
        """Open the log and record ``run.started`` (done implicitly by the first publish)."""
        if self._engine is not None:
            return self._engine
        if self._closed:
            raise UserError(f"run {self.run_id} is closed")
        check_not_importing()  # before the log opens or a model is called
        self.check_models()
        if self.calls_models:
            warm_schemas(self.agents.values())  # setup work, off the first calls' path
        make_timers_precise(asyncio.get_running_loop())  # agents' sleeps end on time
        share = self.share
        if share is not None:
            writer = self._writer = await share.open_sink()
        else:
            store = open_store(self.db_path)
            writer = self._writer = await store.open_writer(self.durability, fence=self.lease)
        state = self._initial_state
        if state is None:
            state = RunState(run_id=self.run_id, compact=True)
        kernel, calls = self.kernel_for(
            self.run_id,
            writer,
            state,
            restore=self._durable_state,
            recorded_requests=self._recorded_requests,
            salvaged=self._salvaged_answers,
        )
        engine = Engine(kernel, self.agents, calls)
        engine.hooks = engine.executor.orchestrator = hooks = self.orchestrator_hooks()
        # ctx.store's queries, and the artifacts the compact state lets go of.
        engine.executor.board = BoardSource(self.db_path, self.run_id)
        if share is not None:
            share.bind(engine)
        kernel.listeners.extend(self._listeners)
        # A live run checkpoints its fold, in another process; a shared run too (every run
        # on PostgreSQL): its workers and resumes fold from the latest snapshot on.
        self._checkpoints = Checkpoints(
            self.db_path,
            self.run_id,
            kernel.state.events,
            lag=self.snapshot_lag,
            first=FIRST_CHECKPOINT,
        )
        kernel.listeners.append(self._checkpoints.committed)
        self._engine = engine
        if self._initial_state is None:
            started = run_started_event(
                self.run_id,
                program_path(self.program),
                self.model,
                self.agents.values(),
                parent_run=self.parent_run,
                fork_seq=self.fork_seq,
                max_agent_iterations=self.max_agent_iterations,
                max_depth=self.max_depth,
                once_per_agent=self.once_per_agent,
                max_concurrent_calls=self.max_concurrent_calls,
            )
            await kernel.emit([started])
        if hooks is not None:
            await hooks.initialize()
        return engine

    def kernel_for(
        self,
        run_id: str,
        sink: Sink,
        state: RunState | None,
        *,
        restore: Callable[[], RunState] | None = None,
        recorded_requests: dict[tuple[str, int], dict[str, Any]] | None = None,
        salvaged: SalvagedAnswers | None = None,
    ) -> tuple[Kernel, ModelCalls]:
        """A kernel and model calls for ``run_id`` with this program's agents, models
        and settings (``start`` makes the run's own; ``flock-es worker`` one per run
        it serves). ``restore`` rebuilds the state from the log after a failed commit;
        ``recorded_requests`` are checked before a recorded answer is served;
        ``salvaged``: answers and tool results a salvage kept for the run
        (``salvaged_answers``)."""
        index = build_index(self.agents.values(), self.max_agent_iterations)
        kernel = Kernel(run_id, sink, index, state, restore)
        calls = ModelCalls(
            kernel.state,
            kernel,
            self._client,
            self.model,
            retry=self.retry,
            max_concurrent=self.max_concurrent_calls,
            requests=recorded_requests,
            salvaged=salvaged,
        )
        return kernel, calls

    def _durable_state(self) -> RunState:
        """The run as its log holds it (the kernel's state after a failed commit)."""
        try:
            with open_reader(self.db_path) as reader:
                return fold(reader.iter_events(self.run_id), compact=self.state.compact)
        except Exception:  # the log cannot even be read: nothing of the run is durable here
            return RunState(run_id=self.run_id, compact=self.state.compact)

    async def run_until_idle(self, timeout: float | timedelta | None = None) -> bool:
        """Return True when no task is pending and no batch timer is armed.

        A partial batch with a timeout is flushed when the timeout expires, and
        its task runs before this returns. A size-only batch that is not full
        stays buffered (it is visible in ``flock-es show``).

        With ``timeout`` (seconds or a timedelta), stop waiting after that long
        and return False if work is still pending (a 30 s batch timeout, a
        5-minute join window, slow agents). Nothing is lost: in-flight tasks go
        on while the program awaits something else; ``close()`` (or the end of
        ``flock-es run``) stops them and records the run as ``interrupted``,
        with its buffers and timers in the log, and ``flock-es resume RUN``
        continues it (timers re-armed, unfinished tasks re-run, recorded model
        calls served from the log). Example::

            if not await flock.run_until_idle(timeout=10):
                print(f"still waiting; later: flock-es resume {flock.run_id}")
        """
        engine = await self.start()
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        try:
            with fewer_collections():
                idle = await engine.run_until_idle(seconds)
                if idle and engine.hooks is not None:
                    await engine.hooks.idle()
                    idle = await engine.run_until_idle(seconds)  # what the idle hooks published
            # A commit that failed meanwhile left the state the log's as far as it could
            # be read (nothing, if the server went away): that looks idle, and the run
            # must not pass for done (it closed 'completed', exit 0, with work left).
            engine.kernel.check()
        except Exception:  # a commit failed (CommitFailed, or the writer's own error)
            self.failed_while_waiting = True
            raise
        self.stopped_waiting = not idle
        if idle and self.reset_circuit_at_idle:
            from flock_es.runtime.circuit import reset_at_idle

            await reset_at_idle(engine)
        return idle

    async def close(
        self, status: RunStatus | None = None, reason: str | None = None, record: bool = True
    ) -> RunStatus:
        """Record ``run.finished`` (not with ``record=False``: the run stays open, for the
        workers of a shared run) and close the log. Returns the final status."""
        if self._engine is None or self._closed:
            self._closed = True
            return status or RunStatus.COMPLETED
        engine = self._engine
        closing = closing_status(
            engine.state,
            in_flight=bool(engine.work),
            gave_up_waiting=self.stopped_waiting,
            status=status,
            reason=reason,
        )
        if closing.cancel_in_flight:
            await engine.cancel_all()
        engine.stop_timers()
        try:
            if engine.hooks is not None:
                await engine.hooks.shutdown()
            if record and engine.kernel.halted is None:
                await engine.emit([closing.event(self.run_id)])
        finally:
            if self._checkpoints is not None:  # first: the writer's close, as the last
                self._checkpoints.stop()  # connection, then checkpoints and drops the WAL
            if engine.executor.board is not None:  # read-only, but open it would keep
                engine.executor.board.close()  # the WAL the writer's close drops
            if self._salvaged_answers is not None:  # so would this one
                self._salvaged_answers.close()
                self._salvaged_answers = None
            if self._writer is not None:
                await self._writer.close()
            await self.mcp_servers.aclose()
            self._closed = True
        if engine.kernel.halted is not None and closing.status is RunStatus.COMPLETED:
            return RunStatus.INTERRUPTED  # a commit failed: what is left is in no log yet
        return closing.status

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
