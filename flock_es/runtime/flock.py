"""``Flock``: the public entry point, spelled as in Flock (flock-core).

The facade holds the program's declaration (agents, components, MCP servers),
the run's state and the publish API; it is composed with the run's lifecycle
(``runtime/run_lifecycle.py``: start, run_until_idle, close) and the one-agent
entry points (``runtime/invocations.py``), each a module of its own.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flock_es.domain import ids
from flock_es.domain.inputs import PublishInput, as_model
from flock_es.domain.visibility import VisibilityLike
from flock_es.domain.visibility import to_dict as visibility_dict
from flock_es.errors import DefinitionError, UserError
from flock_es.log.backends import DbRef, parse_db
from flock_es.log.ports import Durability, EventWriter, Lease
from flock_es.log.salvaged_answers import SalvagedAnswers
from flock_es.log.schema import default_db_path
from flock_es.models.mcp_client import McpServers
from flock_es.models.retry import RetryPolicy
from flock_es.projection.chain_depth import DEFAULT_MAX_DEPTH
from flock_es.projection.state import RunState
from flock_es.runtime.agent import Agent
from flock_es.runtime.agent_builder import AgentBuilder
from flock_es.runtime.artifacts import RunArtifacts
from flock_es.runtime.board_queries import BoardSource
from flock_es.runtime.checkpoints import Checkpoints
from flock_es.runtime.engine import DEFER_AT, Engine, ShareHook
from flock_es.runtime.gc_policy import fewer_collections
from flock_es.runtime.invocations import Invocations
from flock_es.runtime.kernel_ports import Listener
from flock_es.runtime.model_clients import OFFLINE, ModelClients, default_model
from flock_es.runtime.orchestrator_components import OrchestratorComponent, checked_component
from flock_es.runtime.orchestrator_hooks import OrchestratorHooks
from flock_es.runtime.publish_input import drainable, drained
from flock_es.runtime.run_lifecycle import RunLifecycle
from flock_es.runtime.store import Store

__all__ = ["OFFLINE", "Flock", "default_model"]


class Flock(RunLifecycle, Invocations):
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
    ``max_depth`` (default 1,000; None: no limit) stops a chain of agent runs,
    each on the last one's output, at that many runs: agents that feed each other
    in a loop stop there, while a fan-out of any size is one run deep. It is
    recorded in ``run.started``: resume and replay keep the run's
    (``projection/chain_depth.py``).
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
        max_depth: int | None = DEFAULT_MAX_DEPTH,
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
        if max_depth is not None and (
            isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 1
        ):
            raise DefinitionError("max_depth must be a positive integer, or None for no limit")
        self.max_depth = max_depth
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
        self._salvaged_answers: SalvagedAnswers | None = None
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
        # The run stopped (a commit failed) while the program waited in run_until_idle,
        # not while it published: the CLI then says no seed was left unpublished.
        self.failed_while_waiting = False
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

    # --- the run's state ---------------------------------------------------

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
        salvaged: SalvagedAnswers | None = None,
    ) -> None:
        """Continue a recorded run from its folded ``state`` (resume, fork) instead of
        starting a new one; ``start`` then records no ``run.started``.

        ``recorded_requests`` are the requests of the model calls recorded for
        the tasks to re-run: a recorded answer is served only to the same request.
        ``board``: where the store reads the artifacts a compact ``state`` let go of
        before the run starts (a replay, which never starts it). ``salvaged``: the
        answers and tool results ``flock-es salvage`` kept for the run past its cut,
        served to the same calls and recorded then.
        """
        self._check_not_started("continue another run")
        self._board = board
        self.run_id = state.run_id
        self.parent_run = state.parent_run
        self.fork_seq = state.fork_seq
        self._initial_state = state
        self._recorded_requests = recorded_requests
        self._salvaged_answers = salvaged

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(events)`` after every commit (progress displays use this)."""
        self._listeners.append(listener)
        if self._engine is not None:
            self._engine.listeners.append(listener)

    # --- publishing (run_lifecycle.py: start, run_until_idle, close) -----

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
