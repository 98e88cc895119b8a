"""``ctx.llm``: the model client a custom engine calls, through the recorded path.

Every call goes through ``ModelCalls`` keyed (task id, call index), exactly
like the built-in model agent's: paid answers are recorded in
``model.called``, and on resume and replay the recorded answer is served
(only to the same request) instead of being paid again.

Example (inside an engine's ``evaluate``)::

    response = await ctx.llm.complete("Say hello", output=Greeting)
    greeting = await ctx.llm.structured(Greeting, [{"role": "user", "content": "Hi"}])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from flock_es.models.base import ModelRequest, ModelResponse
from flock_es.models.prompt import output_schema, parse_output
from flock_es.runtime.context import TaskRun
from flock_es.runtime.model_calls import ModelCalls

__all__ = ["EngineLLM"]

M = TypeVar("M", bound=BaseModel)

_FREE_TEXT: dict[str, Any] = {"type": "string"}


class EngineLLM:
    """Model calls of one task's engine (``ctx.llm``)."""

    def __init__(self, calls: ModelCalls, run: TaskRun, inputs: list[dict[str, Any]]) -> None:
        self._calls = calls
        self._run = run
        self._inputs = inputs

    @property
    def model(self) -> str:
        """The model this agent uses (its own ``.model()``, else the Flock's)."""
        return self._run.agent.model or self._calls.default_model

    async def complete(
        self,
        messages: Sequence[dict[str, Any]] | str,
        *,
        output: type[BaseModel] | Sequence[type[BaseModel]] | None = None,
        model: str | None = None,
        **settings: Any,
    ) -> ModelResponse:
        """One recorded model call; ``output`` asks for JSON of those types.

        ``messages`` is a chat (``[{"role": ..., "content": ...}]``) or one user
        prompt. The answer's text is ``response.content``.
        """
        chat = [{"role": "user", "content": messages}] if isinstance(messages, str) else messages
        types = [output] if isinstance(output, type) else list(output or ())
        agent = self._run.agent
        request = ModelRequest(
            model=model or self.model,
            agent=agent.name,
            description=agent.description,
            inputs=self._inputs,
            output_schema=output_schema(types) if types else _FREE_TEXT,
            messages=[dict(m) for m in chat],
            settings={**agent.settings, **settings},
        )
        return await self._calls.call(self._run, request)

    async def structured(
        self,
        output: type[M],
        messages: Sequence[dict[str, Any]] | str,
        *,
        model: str | None = None,
        **settings: Any,
    ) -> M:
        """One recorded call whose answer is validated as an ``output``.

        Raises ``OutputValidationError`` if the answer does not validate.
        """
        response = await self.complete(messages, output=output, model=model, **settings)
        [obj] = parse_output(response.content, [output])
        assert isinstance(obj, output)
        return obj
