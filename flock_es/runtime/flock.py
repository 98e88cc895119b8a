"""``Flock``: the public entry point, spelled as in Flock (flock-core)."""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from flock_es.domain import ids
from flock_es.domain.events import RunStatus
from flock_es.domain.inputs import PublishInput, as_model
from flock_es.domain.visibility import VisibilityLike
from flock_es.domain.visibility import to_dict as visibility_dict
from flock_es.errors import DefinitionError, UserError
from flock_es.log.backends import DbRef, open_reader, parse_db
from flock_es.log.ports import Durability, EventWriter, Lease, open_store
from flock_es.log.schema import default_db_path
from flock_es.models.base import ModelClient
from flock_es.models.mcp_client import McpServers
from flock_es.models.precise_timers import make_timers_precise
from flock_es.models.retry import RetryPolicy
from flock_es.projection.fold import fold
from flock_es.projection.state import RunState
from flock_es.runtime.agent import Agent, AgentBuilder
from flock_es.runtime.artifacts import RunArtifacts
from flock_es.runtime.board_queries import BoardSource
from flock_es.runtime.checkpoints import Checkpoints
from flock_es.runtime.engine import DEFER_AT, Engine, ShareHook
from flock_es.runtime.gc_policy import fewer_collections
from flock_es.runtime.invocations import Invocations
from flock_es.runtime.kernel import Kernel, Listener, Sink, build_index
from flock_es.runtime.model_agent import warm_schemas
from flock_es.runtime.model_calls import ModelCalls
from flock_es.runtime.model_clients import OFFLINE, ModelClients, default_model
from flock_es.runtime.orchestrator_components import OrchestratorComponent, checked_component
from flock_es.runtime.orchestrator_hooks import OrchestratorHooks
from flock_es.runtime.publish_input import drainable, drained
from flock_es.runtime.run_boundaries import closing_status, program_path, run_started_event
from flock_es.runtime.store import Store

__all__ = ["OFFLINE", "Flock", "default_model"]


class Flock(Invocations):
    """A blackboard of agents whose every step is recorded in a SQLite event log.

    Example::

        flock = Flock()                      # model: $FLOCK_ES_MODEL or "offline"
        flock.agent("summariser").consumes(Story).publishes(Summary)
        await flock.publish(Story(text="..."))
        await flock.run_until_idle()
        summaries = await flock.store.get_by_type(Summary)

    ``model``: a litellm model string, or ``offline`` (the default). ``db``: the
    database file (else ``$FLOCK_ES_DB``, else ``data/flock-es.db``).
    ``max_concurrent_calls`` caps model calls in flight across all agents.
    ``retry`` (a ``RetryPolicy``) bounds retries, backoff and timeouts of model
    calls and how often an answer that does not validate is sent back.
    ``max_agent_iterations`` is a circuit breaker: no agent runs more often than
    that in one run; a refused match is recorded as ``circuit.tripped``.
    ``once_per_agent=True`` is flock-core's rule: when several subscriptions of
    one agent match an artifact, only the first (in declaration order) takes it;
    by default each matching subscription runs (docs/differences-from-flock.md).
    ``reset_circuit_at_idle=True`` is flock-core's breaker: its counts start
    again whenever ``run_until_idle()`` finds the run idle (``runtime/circuit.py``).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        db: str | Path | None = None,
        max_concurrent_calls: int | None = None,
        run_id: str | None = None,
        max_agent_iterations: int | None = None,
        retry: RetryPolicy | None = None,
        once_per_agent: bool = False,
        reset_circuit_at_idle: bool = False,
    ) -> None:
        self.model = model or default_model()
        self.once_per_agent = bool(once_per_agent)
        self.reset_circuit_at_idle = bool(reset_circuit_at_idle)
        self.retry = retry
        if max_agent_iterations is not None and (
            isinstance(max_agent_iterations, bool)
            or not isinstance(max_agent_iterations, int)
            or max_agent_iterations < 1
        ):
            raise DefinitionError("max_agent_iterations must be a positive integer")
        self.max_agent_iterations = max_agent_iterations
        self.db_path: DbRef = parse_db(db) if db is not None else default_db_path()
        if max_concurrent_calls is not None and max_concurrent_calls < 1:
            raise DefinitionError("max_concurrent_calls must be >= 1")
        self.max_concurrent_calls = max_concurrent_calls
        self.run_id = run_id or ids.new_run_id()
        self.agents: dict[str, Agent] = {}
        self.store = Store(self)
        self.program: Path | None = None
        self.parent_run: str | None = None
        self.fork_seq: int | None = None
        self._engine: Engine | None = None
        self._writer: EventWriter | None = None
        # One client per model; ``register`` brings an in-process one (tests).
        self.clients = ModelClients()
        self._listeners: list[Listener] = []
        self._checkpoints: Checkpoints | None = None
        # Events of the run past its latest snapshot when it starts (a resume's fold).
        self.snapshot_lag = 0
        self._initial_state: RunState | None = None
        self._board: BoardSource | None = None  # see continue_from
        # Recorded requests of the calls resume may serve (checked before serving).
        self._recorded_requests: dict[tuple[str, int], dict[str, Any]] | None = None
        self._closed = False
        # The run's lease (lifecycle.Ownership): every commit checks it is still ours.
        self.lease: Lease | None = None
        # full: paid answers are fsynced before anything acts on them (README, durability).
        self.durability = Durability.choose()
        # Set by `flock-es run` on a shared log: the run's events go through it, and
        # its tasks are claimed by workers (runtime/worker.py).
        self.share: ShareHook | None = None
        # The last run_until_idle(timeout=) gave up: the CLI then does not wait again.
        self.stopped_waiting = False
        # Orchestrator components (``add_component``), in the order added.
        self.components: list[OrchestratorComponent] = []
        # MCP servers (add_mcp); started on first use, stopped at close().
        self.mcp_servers = McpServers()

    # --- declaration -----------------------------------------------------

    def agent(self, name: str) -> AgentBuilder:
        """Declare an agent; returns its builder (see ``AgentBuilder``)."""
        if not isinstance(name, str) or not name.strip():
            raise DefinitionError("an agent needs a non-empty name")
        if name in self.agents:
            raise DefinitionError(f"an agent named {name!r} is already defined")
        self._check_not_started("define agents")
        agent = Agent(name=name, mcp=self.mcp_servers)
        self.agents[name] = agent
        return AgentBuilder(agent, lambda: self._check_not_started("change agents"))

    def add_component(self, component: OrchestratorComponent) -> Flock:
        """Add an ``OrchestratorComponent``; returns the Flock, so calls chain. Example::

        flock.add_component(NoSpam()).add_component(Metrics(priority=5))
        """
        self._check_not_started("add components")
        self.components.append(checked_component(component))
        return self

    def orchestrator_hooks(self) -> OrchestratorHooks | None:
        """The runner of this program's orchestrator components (None without any)."""
        return OrchestratorHooks(self, self.components, self.agents) if self.components else None

    def add_mcp(self, name: str, connection_params: Any, **options: Any) -> Flock:
        """Register an MCP server whose tools agents may use (``.with_mcps([name])``).

        Flock's signature: ``connection_params`` is a ``StdioServerParameters``
        or ``StreamableHttpServerParameters``; options include ``tool_whitelist``,
        ``read_timeout_seconds`` and ``enable_tools_feature`` (the others are
        accepted). Needs ``pip install 'flock-es[mcp]'``. Example::

            from flock_es import StdioServerParameters
            flock.add_mcp("notes", StdioServerParameters(command="python",
                                                         args=["notes_server.py"]))
        """
        from flock_es.runtime.mcp import add_server

        self._check_not_started("add MCP servers")
        add_server(self.mcp_servers, name, connection_params, **options)
        return self

    def _check_not_started(self, what: str) -> None:
        if self._engine is not None:
            raise DefinitionError(f"cannot {what} after the run has started")

    # --- running ---------------------------------------------------------

    @property
    def state(self) -> RunState:
        """The folded state of the current run (empty before the run starts).

        In process it holds what decisions need: a completed task leaves ``tasks``
        (counted in ``finished``, its counts in the agents and
        ``tasks_by_status()``), and ``artifacts`` holds the views of artifacts not
        yet durable or still needed by pending work (``artifacts()`` reads any of
        the run's), so memory does not grow with the run (issue 14).
        ``flock-es show RUN`` folds everything from the log."""
        if self._engine is None:
            return self._initial_state or RunState(run_id=self.run_id)
        return self._engine.state

    def artifacts(self) -> RunArtifacts:
        """The current run's artifacts: the views ``state`` holds, else the log's.

        Example: ``notes = flock.artifacts().of_type("Note")``."""
        if self._engine is not None:
            return self._engine.kernel.artifacts
        return RunArtifacts(self.state, self._board)

    @property
    def engine(self) -> Engine:
        """The running engine (after ``start``)."""
        if self._engine is None:
            raise UserError(f"run {self.run_id} has not started")
        return self._engine

    @property
    def started(self) -> bool:
        """Whether the run's log is open (``start`` or the first publish)."""
        return self._engine is not None

    def continue_from(
        self,
        state: RunState,
        recorded_requests: dict[tuple[str, int], dict[str, Any]] | None = None,
        board: BoardSource | None = None,
    ) -> None:
        """Continue a recorded run from its folded ``state`` (resume, fork) instead of
        starting a new one; ``start`` then records no ``run.started``.

        ``recorded_requests`` are the requests of the model calls recorded for
        the tasks to re-run: a recorded answer is served only to the same request.
        ``board``: where the store reads the artifacts a compact ``state`` let go of
        before the run starts (a replay, which never starts it).
        """
        self._check_not_started("continue another run")
        self._board = board
        self.run_id = state.run_id
        self.parent_run = state.parent_run
        self.fork_seq = state.fork_seq
        self._initial_state = state
        self._recorded_requests = recorded_requests

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(events)`` after every commit (progress displays use this)."""
        self._listeners.append(listener)
        if self._engine is not None:
            self._engine.listeners.append(listener)

    def _client(self, agent: Agent) -> ModelClient:
        return self.clients.for_agent(agent, self.model)

    def check_models(self) -> None:
        """Fail fast on an unknown provider or a missing API key, before any work."""
        self.clients.check(self.agents.values(), self.model)

    async def start(self) -> Engine:
        """Open the log and record ``run.started`` (done implicitly by the first publish)."""
        if self._engine is not None:
            return self._engine
        if self._closed:
            raise UserError(f"run {self.run_id} is closed")
        self.check_models()
        warm_schemas(self.agents.values())  # setup work, off the first calls' path
        make_timers_precise(asyncio.get_running_loop())  # agents' sleeps end on time
        share = self.share
        if share is not None:
            writer = self._writer = await share.open_sink()
        else:
            store = open_store(self.db_path)
            writer = self._writer = await store.open_writer(self.durability, fence=self.lease)
        state = self._initial_state
        if state is None and share is None:  # workers look finished tasks up by id
            state = RunState(run_id=self.run_id, compact=True)
        kernel, calls = self.kernel_for(
            self.run_id,
            writer,
            state,
            restore=self._durable_state,
            recorded_requests=self._recorded_requests,
        )
        engine = Engine(kernel, self.agents, calls)
        engine.hooks = engine.executor.orchestrator = hooks = self.orchestrator_hooks()
        # ctx.store's queries, and the artifacts the compact state lets go of.
        engine.executor.board = BoardSource(self.db_path, self.run_id)
        if share is not None:
            share.bind(engine)
        kernel.listeners.extend(self._listeners)
        if share is None:  # a live run checkpoints its fold, in another process
            self._checkpoints = Checkpoints(
                self.db_path, self.run_id, kernel.state.events, lag=self.snapshot_lag
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
                once_per_agent=self.once_per_agent,
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
    ) -> tuple[Kernel, ModelCalls]:
        """A kernel and model calls for ``run_id`` with this program's agents, models
        and settings (``start`` makes the run's own; ``flock-es worker`` one per run
        it serves). ``restore`` rebuilds the state from the log after a failed commit;
        ``recorded_requests`` are checked before a recorded answer is served."""
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
        )
        return kernel, calls

    def _durable_state(self) -> RunState:
        """The run as its log holds it (the kernel's state after a failed commit)."""
        try:
            with open_reader(self.db_path) as reader:
                return fold(reader.iter_events(self.run_id), compact=self.state.compact)
        except Exception:  # the log cannot even be read: nothing of the run is durable here
            return RunState(run_id=self.run_id, compact=self.state.compact)

    async def publish(
        self,
        obj: PublishInput,
        *,
        tags: Iterable[str] | None = None,
        correlation_id: str | None = None,
        visibility: VisibilityLike = None,
        partition_key: str | None = None,
    ) -> str:
        """Put ``obj`` on the blackboard; returns its artifact id once it is durable.

        Every matching agent is scheduled in the same transaction and starts right away.
        ``tags`` route to ``.consumes(..., tags=...)``; ``correlation_id`` groups the
        artifacts of one conversation (outputs inherit it); ``visibility`` is a
        ``PublicVisibility``/``PrivateVisibility``/... (default public). As in
        Flock, ``obj`` may be a dict naming its registered type:
        ``{"type": "Task", "name": "deploy"}`` or ``{"type": "Task", "payload": {...}}``.
        ``partition_key`` is Flock's sharding label: recorded on the artifact
        (``Artifact.partition_key``), not inherited by outputs, no effect on matching.
        """
        return (
            await self.publish_many(
                [obj],
                tags=tags,
                correlation_id=correlation_id,
                visibility=visibility,
                partition_key=partition_key,
            )
        )[0]

    async def publish_many(
        self,
        objs: Iterable[PublishInput],
        *,
        tags: Iterable[str] | None = None,
        correlation_id: str | None = None,
        visibility: VisibilityLike = None,
        partition_key: str | None = None,
    ) -> list[str]:
        """Publish several objects (models or typed dicts) in one transaction; returns their ids.

        All of them are durable, or none. Up to 256 are decided in that transaction
        too; the matches of a larger publish are decided after it, 128 artifacts a
        transaction, as the run's earlier tasks finish (a crash in between loses
        nothing: resume decides the rest), so its tasks are not all pending at once.
        Such a publish is built and written a chunk at a time, and ``objs`` may be a
        generator read as it goes: the program need not hold 100,000 objects at once.
        """
        refs = sys.getrefcount(objs)  # first: a list only this call holds is read as it
        if drainable(objs, refs):  # streams, each object let go once built (publish_input.py)
            objs = drained(objs)
        # A publish of more than DEFER_AT objects streams: a generator is read as it goes
        # (runtime/publish_stream.py), so the program need not hold its objects at once.
        models = map(as_model, objs)
        head = list(itertools.islice(models, DEFER_AT + 1))
        items = head if len(head) <= DEFER_AT else itertools.chain(head, models)
        vis = visibility_dict(visibility)
        engine = await self.start()
        tag_list = [tags] if isinstance(tags, str) else list(tags or ())
        if partition_key is not None and not isinstance(partition_key, str):
            raise DefinitionError(f"partition_key= takes a string, got {partition_key!r}")
        with fewer_collections():  # deciding a large publish allocates as much as running it
            return await engine.publish_external(
                items, tag_list, correlation_id, vis, partition_key
            )

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
        with fewer_collections():
            idle = await engine.run_until_idle(seconds)
            if idle and engine.hooks is not None:
                await engine.hooks.idle()
                idle = await engine.run_until_idle(seconds)  # what the idle hooks published
        self.stopped_waiting = not idle
        if idle and self.reset_circuit_at_idle:
            from flock_es.runtime.circuit import reset_at_idle

            await reset_at_idle(engine)
        return idle

    async def close(self, status: RunStatus | None = None, reason: str | None = None) -> RunStatus:
        """Record ``run.finished`` and close the log. Returns the final status."""
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
            if engine.kernel.halted is None:
                await engine.emit([closing.event(self.run_id)])
        finally:
            if self._checkpoints is not None:  # first: the writer's close, as the last
                self._checkpoints.stop()  # connection, then checkpoints and drops the WAL
            if engine.executor.board is not None:  # read-only, but open it would keep
                engine.executor.board.close()  # the WAL the writer's close drops
            if self._writer is not None:
                await self._writer.close()
            await self.mcp_servers.aclose()
            self._closed = True
        return closing.status

    async def __aenter__(self) -> Flock:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
