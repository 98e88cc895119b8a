"""The litellm adapter: every model string other than ``offline``.

litellm is imported lazily, and only after ``LITELLM_LOCAL_MODEL_COST_MAP`` is
set, so nothing pays its import (or a network fetch of the cost map) unless a
real provider is used.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flock_es.errors import ConfigError
from flock_es.models.base import ModelRequest, ModelResponse


def import_litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


class LiteLLMClient:
    """Calls a provider through ``litellm.acompletion``."""

    def __init__(self, model: str, **settings: Any) -> None:
        self.name = model
        self.model = model
        self.settings = settings

    def check(self) -> None:
        """Fail before any work on an unknown provider or a missing API key."""
        litellm = import_litellm()
        try:
            _, provider, _, _ = litellm.get_llm_provider(self.model)
        except Exception:
            raise ConfigError(
                f"unknown model provider in {self.model!r}; use e.g. 'openai/gpt-4.1', "
                "'anthropic/claude-sonnet-4-5', 'ollama/llama3' or 'offline'"
            ) from None
        if self.settings.get("api_key") or self.settings.get("api_base"):
            return
        env = litellm.validate_environment(model=self.model)
        missing = env.get("missing_keys") or []
        if missing and provider not in ("ollama", "ollama_chat"):
            raise ConfigError(
                f"model {self.model!r} needs {', '.join(missing)} in the environment "
                "(or run with --model offline)"
            )

    def _supports_schema(self, litellm: Any) -> bool:
        try:
            return bool(litellm.supports_response_schema(model=self.model))
        except Exception:
            return False

    async def complete(self, request: ModelRequest) -> ModelResponse:
        litellm = import_litellm()
        kwargs: dict[str, Any] = {**self.settings, **request.settings}
        if self._supports_schema(litellm):
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.output_schema},
            }
        t0 = time.perf_counter()
        resp = await litellm.acompletion(model=self.model, messages=request.messages, **kwargs)
        latency = (time.perf_counter() - t0) * 1000.0
        content = resp.choices[0].message.content or ""
        usage = getattr(resp, "usage", None)
        try:
            cost: float | None = float(litellm.completion_cost(completion_response=resp))
        except Exception:
            cost = None
        return ModelResponse(
            content=content,
            tokens_in=int(getattr(usage, "prompt_tokens", 0) or 0),
            tokens_out=int(getattr(usage, "completion_tokens", 0) or 0),
            cost=cost,
            latency_ms=latency,
        )
