"""What every model client takes and returns, and how a model string picks one."""

from __future__ import annotations

import hashlib
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from flock_es.models.prompt import json_encoder

__all__ = ["ModelClient", "ModelRequest", "ModelResponse", "is_offline", "resolve_client"]

# ``json.dumps(..., sort_keys=True, default=str)``, its encoder built once: the same
# text, once per offline answer.
_DIGEST_JSON = json_encoder(sort_keys=True, default=str)


class ModelRequest(BaseModel):
    """One call to a model: the prompt plus the structure the answer must have."""

    model: str
    agent: str
    description: str = ""
    inputs: list[dict[str, Any]] = Field(default_factory=list)
    output_schema: dict[str, Any]
    messages: list[dict[str, Any]] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)
    # Function-calling tool specs, in the OpenAI format litellm takes.
    tools: list[dict[str, Any]] = Field(default_factory=list)

    def digest(self) -> str:
        blob = _DIGEST_JSON(
            {"agent": self.agent, "inputs": self.inputs, "schema": self.output_schema}
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def redacted(self) -> dict[str, Any]:
        """The request as recorded: no credentials, whatever the settings held."""
        from flock_es.redaction import held_secrets, redact, redact_settings, register_settings

        register_settings(self.settings)
        # The fields as they are, not a dump: every part is JSON already (our prompt
        # builders make them) and nothing mutates a recorded request, so sharing the
        # agent's cached schema and the prompt's messages is safe, and a dump (a walk
        # copying the whole prompt and schema) cost ~0.1 ms per call on the answer's path.
        data: dict[str, Any] = {
            "model": self.model,
            "agent": self.agent,
            "description": self.description,
            "output_schema": self.output_schema,
            "messages": self.messages,
            "tools": self.tools,
        }
        # With no secret held there is nothing to replace; else ``redact`` copies.
        cleaned: dict[str, Any] = redact(data) if held_secrets() else data
        cleaned["settings"] = redact_settings(self.settings)
        return cleaned


class ModelResponse(BaseModel):
    """A model's raw answer and what it cost.

    ``tool_calls``: the tools the model asked for instead of answering, each
    ``{"id", "name", "arguments"}`` (arguments as the JSON text the model wrote).
    ``recorded``: served from the log, not from the model. ``tokens_in`` /
    ``tokens_out`` are None when the provider sent no usage.
    """

    content: str
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    # None: the provider did not say (unknown, not zero).
    tokens_in: int | None = 0
    tokens_out: int | None = 0
    cost: float | None = 0.0
    latency_ms: float = 0.0
    attempt: int = 1
    recorded: bool = False
    # Rate-limit headers of the response, for the model's limiter; never recorded.
    headers: dict[str, str] = Field(default_factory=dict, exclude=True)


@runtime_checkable
class ModelClient(Protocol):
    """A model backend. ``check`` fails fast (before any work) on bad configuration."""

    name: str

    def check(self) -> None: ...

    async def complete(self, request: ModelRequest) -> ModelResponse: ...


def is_offline(model: str) -> bool:
    """Whether ``model`` names the offline model: ``offline``, ``offline?latency=2``,
    ``offline:2``."""
    return model == "offline" or model.startswith(("offline?", "offline:"))


def resolve_client(model: str, settings: dict[str, Any] | None = None) -> ModelClient:
    """``offline`` (optionally ``offline?latency=SECONDS``) or a litellm model string.

    ``settings`` (``api_base``, ``api_key``, ...) configure a litellm client.
    """
    if is_offline(model):
        from flock_es.models.offline import OfflineModel

        return OfflineModel.from_string(model)
    from flock_es.models.litellm_client import LiteLLMClient

    return LiteLLMClient(model, **(settings or {}))
