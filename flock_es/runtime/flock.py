"""``Flock``: the public entry point, spelled as in Flock (flock-core)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from flock_es._version import __version__
from flock_es.domain import ids
from flock_es.domain.events import (
    Event,
    EventKind,
    RunFinished,
    RunStarted,
    RunStatus,
    make_event,
)
from flock_es.domain.inputs import PublishInput, as_model
from flock_es.domain.visibility import VisibilityLike
from flock_es.domain.visibility import to_dict as visibility_dict
from flock_es.errors import (
    DefinitionError,
    MissingCredentialsError,
    UserError,
)
from flock_es.log.backends import DbRef, open_reader, parse_db
from flock_es.log.ports import Durability, EventWriter, Lease, open_store
from flock_es.log.schema import default_db_path
from flock_es.models.base import ModelClient, resolve_client
from flock_es.models.retry import RetryPolicy
from flock_es.projection.fold import fold
from flock_es.projection.state import RunState
from flock_es.runtime.agent import Agent, AgentBuilder
from flock_es.runtime.engine import Engine
from flock_es.runtime.gc_policy import fewer_collections
from flock_es.runtime.kernel import Kernel, Listener, Sink, build_index
from flock_es.runtime.model_calls import ModelCalls
from flock_es.runtime.store import Store


class ShareHook(Protocol):
    """How a run joins a shared log (``runtime.worker.ShareRun``): the sink its
    events go through, and the engine it then serves."""

    async def open_sink(self) -> EventWriter: ...

    def bind(self, engine: Engine) -> None: ...


__all__ = ["OFFLINE", "Flock", "default_model"]

OFFLINE = "offline"


def default_model() -> str:
    """``$FLOCK_ES_MODEL``, else ``$DEFAULT_MODEL``, else ``offline``."""
    return os.environ.get("FLOCK_ES_MODEL") or os.environ.get("DEFAULT_MODEL") or OFFLINE


class Flock:
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
    ) -> None:
        self.model = model or default_model()
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
        self._clients: dict[str, ModelClient] = {}
        self._listeners: list[Listener] = []
        self._initial_state: RunState | None = None
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

    # --- declaration -----------------------------------------------------

    def agent(self, name: str) -> AgentBuilder:
        """Declare an agent; returns its builder (see ``AgentBuilder``)."""
        if not isinstance(name, str) or not name.strip():
            raise DefinitionError("an agent needs a non-empty name")
        if name in self.agents:
            raise DefinitionError(f"an agent named {name!r} is already defined")
        self._check_not_started("define agents")
        agent = Agent(name=name)
        self.agents[name] = agent
        return AgentBuilder(agent, lambda: self._check_not_started("change agents"))

    def _check_not_started(self, what: str) -> None:
        if self._engine is not None:
            raise DefinitionError(f"cannot {what} after the run has started")

    # --- running ---------------------------------------------------------

    @property
    def state(self) -> RunState:
        """The folded state of the current run (empty before the run starts)."""
        if self._engine is None:
            return self._initial_state or RunState(run_id=self.run_id)
        return self._engine.state

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
    ) -> None:
        """Continue a recorded run from its folded ``state`` (resume, fork) instead of
        starting a new one; ``start`` then records no ``run.started``.

        ``recorded_requests`` are the requests of the model calls recorded for
        the tasks to re-run: a recorded answer is served only to the same request.
        """
        self._check_not_started("continue another run")
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
        model = agent.model or self.model
        # Settings may hold an agent's own api_base/api_key, which check() must see.
        key = f"{model}\x00{agent.name}" if agent.settings else model
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = resolve_client(model, agent.settings)
        return client

    def check_models(self) -> None:
        """Fail fast on an unknown provider or a missing API key, before any work."""
        for agent in self.agents.values():
            if agent.function is None:
                try:
                    self._client(agent).check()
                except MissingCredentialsError as exc:
                    # Say what will work: --model only reaches agents without their own.
                    hint = (
                        f"agent {agent.name!r} sets it with .model(), so --model does not change "
                        "it; set the key, or change the agent's model"
                        if agent.model
                        else "or run with --model offline"
                    )
                    raise MissingCredentialsError(f"{exc} ({hint})") from None
                if not agent.publishes:
                    raise DefinitionError(
                        f"agent {agent.name!r} has no .publishes() and no function; "
                        "the model would not know what to answer"
                    )

    def _program_path(self) -> Path | None:
        if self.program is not None:
            return self.program
        main = sys.modules.get("__main__")
        f = getattr(main, "__file__", None)
        return Path(f).resolve() if f else None

    async def start(self) -> Engine:
        """Open the log and record ``run.started`` (done implicitly by the first publish)."""
        if self._engine is not None:
            return self._engine
        if self._closed:
            raise UserError(f"run {self.run_id} is closed")
        self.check_models()
        share = self.share
        if share is not None:
            writer = self._writer = await share.open_sink()
        else:
            store = open_store(self.db_path)
            writer = self._writer = await store.open_writer(self.durability, fence=self.lease)
        index = build_index(self.agents.values(), self.max_agent_iterations)
        kernel = Kernel(self.run_id, writer, index, self._initial_state, self._durable_state)
        calls = ModelCalls(
            kernel.state,
            kernel,
            self._client,
            self.model,
            retry=self.retry,
            max_concurrent=self.max_concurrent_calls,
            requests=self._recorded_requests,
        )
        engine = Engine(kernel, self.agents, calls)
        if share is not None:
            share.bind(engine)
        kernel.listeners.extend(self._listeners)
        self._engine = engine
        if self._initial_state is None:
            await kernel.emit([self._run_started_event()])
        return engine

    def kernel_for(self, run_id: str, sink: Sink, state: RunState) -> tuple[Kernel, ModelCalls]:
        """A kernel and model calls for ``run_id`` with this program's agents, models
        and settings (``flock-es worker`` makes one per run it serves)."""
        index = build_index(self.agents.values(), self.max_agent_iterations)
        kernel = Kernel(run_id, sink, index, state)
        calls = ModelCalls(
            kernel.state,
            kernel,
            self._client,
            self.model,
            retry=self.retry,
            max_concurrent=self.max_concurrent_calls,
        )
        return kernel, calls

    def _durable_state(self) -> RunState:
        """The run as its log holds it (the kernel's state after a failed commit)."""
        try:
            with open_reader(self.db_path) as reader:
                return fold(reader.iter_events(self.run_id))
        except Exception:  # the log cannot even be read: nothing of the run is durable here
            return RunState(run_id=self.run_id)

    def _run_started_event(self) -> Event:
        program = self._program_path()
        body = RunStarted(
            program=str(program) if program else None,
            program_hash=ids.content_hash(program.read_bytes())
            if program and program.is_file()
            else None,
            model=self.model,
            agents=[a.spec() for a in self.agents.values()],
            parent_run=self.parent_run,
            fork_seq=self.fork_seq,
            pid=os.getpid(),
            host=socket.gethostname(),
            version=__version__,
            max_agent_iterations=self.max_agent_iterations,
        )
        return make_event(self.run_id, EventKind.RUN_STARTED, body, time.time())

    async def publish(
        self,
        obj: PublishInput,
        *,
        tags: Iterable[str] | None = None,
        correlation_id: str | None = None,
        visibility: VisibilityLike = None,
    ) -> str:
        """Put ``obj`` on the blackboard; returns its artifact id once it is durable.

        Every matching agent is scheduled in the same transaction and starts right away.
        ``tags`` route to ``.consumes(..., tags=...)``; ``correlation_id`` groups the
        artifacts of one conversation (outputs inherit it); ``visibility`` is a
        ``PublicVisibility``/``PrivateVisibility``/... (default public). As in
        Flock, ``obj`` may be a dict naming its registered type:
        ``{"type": "Task", "name": "deploy"}`` or ``{"type": "Task", "payload": {...}}``.
        """
        return (
            await self.publish_many(
                [obj], tags=tags, correlation_id=correlation_id, visibility=visibility
            )
        )[0]

    async def publish_many(
        self,
        objs: Iterable[PublishInput],
        *,
        tags: Iterable[str] | None = None,
        correlation_id: str | None = None,
        visibility: VisibilityLike = None,
    ) -> list[str]:
        """Publish several objects (models or typed dicts) in one transaction; returns their ids."""
        items = [as_model(o) for o in objs]
        vis = visibility_dict(visibility)
        engine = await self.start()
        tag_list = [tags] if isinstance(tags, str) else list(tags or ())
        return await engine.publish_external(items, tag_list, correlation_id, vis)

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
        self.stopped_waiting = not idle
        return idle

    def get_agent(self, name: str) -> Agent:
        """The agent declared as ``name`` (``flock.agents`` maps every name to its agent)."""
        if name not in self.agents:
            raise DefinitionError(f"no agent named {name!r}")
        return self.agents[name]

    async def invoke(
        self,
        agent: str | AgentBuilder | Agent,
        obj: PublishInput,
        *,
        publish_outputs: bool = True,
        timeout: float | None = None,
    ) -> list[BaseModel]:
        """Run ``agent`` exactly once on ``obj`` and return its outputs.

        ``obj`` is recorded but not offered to other agents. With
        ``publish_outputs=False`` the outputs are recorded but not published.
        ``timeout`` (seconds) raises ``TimeoutError`` if the outputs are not
        there in time; the task itself goes on and is recorded (or resumed).
        """
        target = self.get_agent(agent if isinstance(agent, str) else agent.name)
        engine = await self.start()
        return await asyncio.wait_for(
            engine.invoke(target, as_model(obj), publish_outputs), timeout=timeout
        )

    async def arun(
        self, agent: str | AgentBuilder | Agent, *inputs: PublishInput
    ) -> list[BaseModel]:
        """Invoke ``agent`` once per input, then wait until idle; returns its outputs."""
        outputs: list[BaseModel] = []
        for obj in inputs:
            outputs.extend(await self.invoke(agent, obj))
        await self.run_until_idle()
        return outputs

    def run(self, agent: str | AgentBuilder | Agent, *inputs: PublishInput) -> list[BaseModel]:
        """Synchronous ``arun`` for scripts: runs the agent, the cascade, and closes the run.

        Not for use inside a running event loop (use ``await flock.arun(...)``). Example::

            pizza = flock.agent("pizza").consumes(Idea).publishes(Pizza)
            [result] = flock.run(pizza, Idea(topic="margherita"))
        """

        async def go() -> list[BaseModel]:
            try:
                return await self.arun(agent, *inputs)
            finally:
                await self.close()

        return asyncio.run(go())

    async def close(self, status: RunStatus | None = None, reason: str | None = None) -> RunStatus:
        """Record ``run.finished`` and close the log. Returns the final status."""
        if self._engine is None or self._closed:
            self._closed = True
            return status or RunStatus.COMPLETED
        engine = self._engine
        failed = [t.id for t in engine.state.failed_tasks()]
        # Tasks still in flight (an invoke that timed out), or armed timers after
        # run_until_idle(timeout=) gave up: the run is not over, resume continues it.
        # Timers armed at a plain close() keep the earlier rule: completed, and resume
        # still finishes them (tests/test_resume_timers.py).
        unfinished = engine.state.pending_tasks() or self.stopped_waiting
        if status is None and engine.work and unfinished:
            await engine.cancel_all()
            status = RunStatus.INTERRUPTED
            reason = reason or "closed with work pending; `flock-es resume` continues it"
        if status is None:
            status = RunStatus.FAILED if failed else RunStatus.COMPLETED
            if failed and len(engine.state.retryable_tasks()) == len(failed):
                # Only provider errors that may pass (an outage, a rate limit): the run is
                # interrupted, not failed; ``resume --retry-failed`` continues it.
                status = RunStatus.INTERRUPTED
                reason = reason or (
                    f"{len(failed)} task(s) failed on provider errors that may pass; "
                    "resume with --retry-failed"
                )
        body = RunFinished(status=status, failed_tasks=failed, reason=reason)
        engine.stop_timers()
        try:
            if engine.kernel.halted is None:
                await engine.emit(
                    [make_event(self.run_id, EventKind.RUN_FINISHED, body, time.time())]
                )
        finally:
            if self._writer is not None:
                await self._writer.close()
            self._closed = True
        return status

    async def __aenter__(self) -> Flock:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
