"""The model clients of a program's agents: which model an agent uses, one client
per model (and per agent where the agent carries its own settings), and the
fail-fast check of providers and keys before any work.

Example::

    clients = ModelClients()
    client = clients.for_agent(agent, default_model())
    clients.check(flock.agents.values(), default_model())
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from flock_es.errors import DefinitionError, MissingCredentialsError
from flock_es.models.base import ModelClient, is_offline, resolve_client
from flock_es.runtime.agent import Agent

__all__ = ["OFFLINE", "ModelClients", "default_model"]

OFFLINE = "offline"


def default_model() -> str:
    """``$FLOCK_ES_MODEL``, else ``$DEFAULT_MODEL``, else ``offline``."""
    return os.environ.get("FLOCK_ES_MODEL") or os.environ.get("DEFAULT_MODEL") or OFFLINE


class ModelClients:
    """One resolved client per model string, made on first use.

    The program's default model is passed on every call, not held: ``resume``,
    ``fork`` and the CLI's ``--model`` change it after the agents are declared.
    """

    def __init__(self) -> None:
        self._by_key: dict[str, ModelClient] = {}

    def register(self, model: str, client: ModelClient) -> None:
        """Serve ``model`` with ``client`` (an in-process client a test or program brings)."""
        self._by_key[model] = client

    def for_agent(self, agent: Agent, default: str) -> ModelClient:
        """The client of ``agent``'s model (its own, else ``default``)."""
        model = agent.model or default
        # Settings may hold an agent's own api_base/api_key, which check() must see.
        key = f"{model}\x00{agent.name}" if agent.settings else model
        client = self._by_key.get(key)
        if client is None:
            client = self._by_key[key] = resolve_client(model, agent.settings)
        return client

    def check(self, agents: Iterable[Agent], default: str, prepare: bool = True) -> None:
        """Fail fast on an unknown provider or a missing API key, before any work.

        Then, with ``prepare``, each client that has a ``prepare()`` starts what its
        first call needs (litellm's import, in the background)."""
        checked: list[ModelClient] = []
        if default not in self._by_key and is_offline(default):
            # Its options are checked though no agent may use it: a mistyped
            # ``--model offline?latency=...`` is one line, not a run that ignores it.
            self._by_key[default] = resolve_client(default, None)
        for agent in agents:
            if agent.function is not None:
                continue
            client = self.for_agent(agent, default)
            try:
                client.check()
            except MissingCredentialsError as exc:
                # Say what will work: --model only reaches agents without their own.
                hint = (
                    f"agent {agent.name!r} sets it with .model(), so --model does not change "
                    "it; set the key, or change the agent's model"
                    if agent.model
                    else "or run with --model offline"
                )
                raise MissingCredentialsError(f"{exc} ({hint})") from None
            if not agent.publishes and not agent.engines:
                raise DefinitionError(
                    f"agent {agent.name!r} has no .publishes() and no function; "
                    "the model would not know what to answer"
                )
            if client not in checked:
                checked.append(client)
        for client in checked if prepare else ():
            start = getattr(client, "prepare", None)  # optional: in-process clients have none
            if start is not None:
                start()
