"""The litellm adapter: every model string other than ``offline``.

litellm is imported lazily, and only after ``LITELLM_LOCAL_MODEL_COST_MAP`` is
set, so nothing pays its import (or a network fetch of the cost map) unless a
real provider is used. Calls go through ``litellm.acompletion`` (never the
blocking ``completion``) with litellm's and the OpenAI SDK's own retries turned
off: the engine retries, so that every attempt is recorded. Failures come out
as ``TransientModelError`` (worth retrying) or ``PermanentModelError``, with
credentials scrubbed from their messages.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any
from urllib.parse import urlsplit

from flock_es.domain.json_values import storable
from flock_es.errors import ConfigError, MissingCredentialsError
from flock_es.models.base import ModelRequest, ModelResponse
from flock_es.models.limiter import limiter_for
from flock_es.models.preflight import (
    KEYLESS,
    import_in_background,
    import_litellm,
    imported_litellm,
    missing_keys,
    wait_for_litellm,
)
from flock_es.models.prompt import schema_by_reference
from flock_es.models.retry import (
    MalformedResponseError,
    PermanentModelError,
    TransientModelError,
    parse_retry_after,
)
from flock_es.redaction import (
    redact_provider_error,
    redact_text,
    register_settings,
    strip_url_credentials,
    url_credentials,
)

__all__ = ["LiteLLMClient", "classify", "import_litellm"]

# flock-es settings that are not litellm parameters.
_OWN_SETTINGS = {"structured_output"}
_PREFIX = re.compile(r"^(litellm\.\w+:\s*)?(\w+Error:\s*)?(\w+Exception\s*-\s*)?")


class LiteLLMClient:
    """Calls a provider through ``litellm.acompletion``.

    ``settings`` (``api_base``, ``api_key``, ``temperature``, ``max_tokens``,
    ...) go to every call; a request's own settings override them.
    ``structured_output=False`` keeps the schema out of ``response_format``
    (it is always in the prompt), ``True`` sends it even where litellm does not
    know that the model supports it.

    Example::

        client = LiteLLMClient("openai/gpt-4.1-mini", temperature=0.2)
        client.check()   # ConfigError on an unknown provider or a missing key
    """

    def __init__(self, model: str, **settings: Any) -> None:
        self.name = model
        self.model = model
        self.settings = settings
        self._schema_support: bool | None = None
        register_settings(settings)
        # One shared concurrency budget per model and endpoint, across agents.
        self.limiter = limiter_for(model, self.endpoint())

    def _base(self) -> str | None:
        """``api_base`` or the provider's ``*_API_BASE``, as given (credentials included)."""
        base = self.settings.get("api_base") or self.settings.get("base_url")
        if not base:
            provider = self.model.split("/", 1)[0] if "/" in self.model else "openai"
            base = os.environ.get(f"{provider.upper()}_API_BASE") or os.environ.get(
                f"{provider.upper()}_BASE_URL"
            )
        return str(base) if base else None

    def endpoint(self) -> str | None:
        """Where the calls go: ``api_base`` or the provider's ``*_API_BASE``, no credentials."""
        base = self._base()
        return strip_url_credentials(base) if base else None

    def check(self) -> None:
        """Fail before any work on an unknown provider, a missing API key or a bad api_base."""
        # The environment's *_API_BASE too: stripped, a credentialed URL no longer parses.
        base = self._base()
        if base and url_credentials(base):
            # The OpenAI client cannot send them next to its API key; every call would fail.
            raise ConfigError(
                f"model {self.model!r}: api_base {strip_url_credentials(base)} has credentials "
                "in the URL, which cannot be sent next to the API key; pass them as api_key= "
                "or in extra_headers= instead"
            )
        _check_url(self.model, self.endpoint())
        if self.settings.get("stream"):
            raise ConfigError(
                f"model {self.model!r}: stream=True is not supported (an answer is validated "
                "and recorded whole); remove it from the model settings"
            )
        known = missing_keys(self.model, self.settings)
        if known is not None:  # a provider whose key variable is known: no import needed
            if known:
                raise MissingCredentialsError(
                    f"model {self.model!r} needs {', '.join(known)} in the environment"
                )
            return
        litellm = import_litellm()
        try:
            _, provider, _, _ = litellm.get_llm_provider(self.model)
        except Exception:
            raise ConfigError(
                f"unknown model provider in {self.model!r}; use e.g. 'openai/gpt-4.1', "
                "'anthropic/claude-sonnet-4-5', 'ollama/llama3' or 'offline'"
            ) from None
        if not self.settings.get("api_key") and provider not in KEYLESS:
            env = litellm.validate_environment(model=self.model)
            missing = [k for k in env.get("missing_keys") or [] if not k.endswith("_API_BASE")]
            if missing:
                raise MissingCredentialsError(
                    f"model {self.model!r} needs {', '.join(missing)} in the environment"
                )

    def prepare(self) -> None:
        """Start what the first call needs, once ``check`` has passed: litellm's import
        and a warm-up (in a background thread; inline if ``check`` imported litellm).
        A process that makes no call (``flock-es run --no-execute``) skips it."""
        model = self.model
        litellm = imported_litellm()
        if litellm is not None:
            _warm_up(litellm, model)
        else:
            import_in_background(lambda litellm: _warm_up(litellm, model))

    def _supports_schema(self, litellm: Any) -> bool:
        if self._schema_support is None:
            try:
                self._schema_support = bool(litellm.supports_response_schema(model=self.model))
            except Exception:
                self._schema_support = False
        return self._schema_support

    def call_kwargs(self, request: ModelRequest, litellm: Any) -> dict[str, Any]:
        """The keyword arguments of ``litellm.acompletion`` for ``request``."""
        merged: dict[str, Any] = {**self.settings, **request.settings}
        structured = merged.get("structured_output")
        kwargs = {k: v for k, v in merged.items() if k not in _OWN_SETTINGS}
        if "response_format" not in kwargs and (
            structured is True or (structured is None and self._supports_schema(litellm))
        ):
            title = str(request.output_schema.get("title") or "output")
            name = re.sub(r"[^A-Za-z0-9_-]", "_", title)[:64]
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": request.output_schema},
            }
            # The schema goes once: in response_format, not in the prompt as well.
            kwargs["messages"] = schema_by_reference(request.messages, name)
        if request.tools:
            kwargs["tools"] = request.tools
        # Our engine retries, and records each attempt; nobody below it may.
        kwargs["max_retries"] = 0
        kwargs.setdefault("num_retries", 0)
        return kwargs

    async def ready(self) -> None:
        """Wait (off the event loop) for litellm's import, which ``check`` started."""
        await wait_for_litellm()

    async def complete(self, request: ModelRequest) -> ModelResponse:
        litellm = await wait_for_litellm()
        kwargs = self.call_kwargs(request, litellm)
        t0 = time.perf_counter()
        try:
            messages = kwargs.pop("messages", request.messages)
            resp = await litellm.acompletion(model=self.model, messages=messages, **kwargs)
        except Exception as exc:
            raise classify(exc, self.model, self.endpoint()) from None
        latency = (time.perf_counter() - t0) * 1000.0
        headers = _response_headers(resp)
        if not getattr(resp, "choices", None):
            raw = _raw(resp)
            raise MalformedResponseError(
                f"model {self.model!r}: the response has no choices (HTTP 200): {raw[:300]}",
                raw=raw,
            )
        message = resp.choices[0].message
        tokens_in, tokens_out = _usage(resp)
        return ModelResponse(
            # ``storable``: a provider that escapes half a surrogate pair would give
            # text the log cannot hold, and its answer (paid) could not be recorded.
            content=storable(message.content or ""),
            tool_calls=[
                {
                    "id": tc.id,
                    "name": tc.function.name,
                    "arguments": tc.function.arguments or "{}",
                }
                for tc in (getattr(message, "tool_calls", None) or [])
            ],
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=_cost(litellm, resp) if tokens_in is not None else None,
            latency_ms=latency,
            headers=headers,
        )


def _usage(resp: Any) -> tuple[int | None, int | None]:
    """Prompt and completion tokens; None (unknown) when the provider sent no usage.

    litellm fills a missing ``usage`` with zeros, and no real call has a prompt
    of 0 tokens, so all-zero means unknown, not free.
    """
    usage = getattr(resp, "usage", None)
    tin = getattr(usage, "prompt_tokens", None)
    tout = getattr(usage, "completion_tokens", None)
    if not tin and not tout:
        return None, None
    return int(tin or 0), int(tout or 0)


def _response_headers(resp: Any) -> dict[str, str]:
    hidden = getattr(resp, "_hidden_params", None) or {}
    headers = hidden.get("additional_headers") if isinstance(hidden, dict) else None
    if not isinstance(headers, dict):
        return {}
    return {str(k).lower(): str(v) for k, v in headers.items() if "ratelimit" in str(k).lower()}


def _raw(resp: Any) -> str:
    try:
        return str(redact_text(resp.model_dump_json()))
    except Exception:
        return redact_text(repr(resp))


_warmed: set[str] = set()


def _warm_up(litellm: Any, model: str) -> None:
    """One mocked call (no network) before the run, per provider.

    litellm imports and builds a lot lazily on its first call; done inside the
    run, that is ~0.2 s of blocked event loop while the first agents start.
    """
    if model.split("/", 1)[0] in _warmed:
        return
    _warmed.add(model.split("/", 1)[0])
    try:
        resp = litellm.completion(
            model=model,
            messages=[{"role": "user", "content": "warm-up"}],
            mock_response="{}",
            api_key="warm-up",
        )
        _cost(litellm, resp)
    except Exception:
        return  # a warm-up is an optimisation, never a reason to fail


def _cost(litellm: Any, resp: Any) -> float | None:
    """The call's price from litellm's local cost map; None when the model has none.

    litellm prices every response it returns (``_hidden_params["response_cost"]``,
    None when the model has no price), with the call's own arguments: reading that
    is the same number without pricing the response a second time (0.5 ms a call,
    1 ms for a model without a price, measured on a 2-core EPYC host).
    """
    hidden = getattr(resp, "_hidden_params", None)
    if isinstance(hidden, dict) and "response_cost" in hidden:
        cost = hidden["response_cost"]
        return float(cost) if isinstance(cost, int | float) else None
    try:
        return float(litellm.completion_cost(completion_response=resp))
    except Exception:
        return None


def _detail(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    text = _PREFIX.sub("", text, count=1)
    text = redact_provider_error(text)
    return text if len(text) <= 300 else text[:299] + "…"


def _check_url(model: str, base: str | None) -> None:
    """An ``api_base`` (or ``*_API_BASE``) that is not a URL fails before any work."""
    if not base:
        return
    try:
        parts = urlsplit(base)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise ConfigError(
            f"model {model!r}: api_base {base!r} is not a valid URL ({exc})"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"model {model!r}: api_base {base!r} is not an http(s) URL with a host")


def _headers_of(exc: Exception) -> dict[str, str] | None:
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    try:
        return {str(k).lower(): str(v) for k, v in headers.items()} if headers else None
    except (AttributeError, TypeError):
        return None


def _root_cause(exc: BaseException) -> str:
    """The innermost cause's message (``Connection refused``, ``Name or service not known``)."""
    seen: set[int] = set()
    found = ""
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = " ".join(str(cur).split())
        if text and text.lower() not in ("connection error.", "connection error"):
            found = text
        cur = cur.__cause__ or cur.__context__
    return redact_provider_error(found)[:200]


def classify(exc: Exception, model: str, endpoint: str | None = None) -> Exception:
    """A litellm exception as a transient or permanent model error with a clear message.

    Timeouts name the model, connection failures the endpoint; a connection
    failure is never reported as an HTTP status it did not get.
    """
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    detail = _detail(exc)
    where = f"model {model!r}"
    if name == "Timeout" or "Timeout" in name:
        return TransientModelError(
            f"{where}: timed out at {endpoint or 'the provider'} ({detail})", "timeout", None
        )
    if name == "RateLimitError" or status == 429:
        headers = _headers_of(exc)
        return TransientModelError(
            f"{where}: rate limited (HTTP 429): {detail}",
            "rate_limited",
            429,
            parse_retry_after(headers),
            headers,
        )
    return _reaching_error(exc, name, detail, where, endpoint) or _status_error(
        name, status, detail, where, exc
    )


def _reaching_error(
    exc: Exception, name: str, detail: str, where: str, endpoint: str | None
) -> Exception | None:
    """A bad api_base or a failed connection (the request never got an HTTP answer)."""
    if "Invalid port" in detail or "InvalidURL" in detail or "Invalid URL" in detail:
        return PermanentModelError(
            f"{where}: the api_base URL {endpoint or ''} is not valid: {detail}", "bad_config", None
        )
    if "credentials encoded in URL" in detail:
        return PermanentModelError(
            f"{where}: the api_base URL has credentials in it; pass them as api_key= or "
            "in extra_headers= instead",
            "bad_config",
            None,
        )
    if name == "APIConnectionError" or "connection error" in detail.lower():
        cause = _root_cause(exc)
        return TransientModelError(
            f"{where}: cannot connect to {endpoint or 'the provider'}"
            + (f" ({cause})" if cause and cause != detail else f" ({detail})"),
            "connection",
            None,
        )
    return None


def _status_error(
    name: str, status: int | None, detail: str, where: str, exc: Exception
) -> Exception:
    """The provider answered with an error: transient (5xx, 408/409/425) or permanent."""
    if name == "AuthenticationError" or status == 401:
        return PermanentModelError(
            f"{where}: authentication failed (HTTP 401), check the API key: {detail}",
            "auth",
            status,
        )
    if name == "PermissionDeniedError" or status == 403:
        return PermanentModelError(f"{where}: permission denied (HTTP 403): {detail}", "auth", 403)
    if name == "NotFoundError" or status == 404:
        return PermanentModelError(
            f"{where}: not found (HTTP 404), check the model name: {detail}", "not_found", 404
        )
    if status is not None and (status >= 500 or status in (408, 409, 425)):
        headers = _headers_of(exc)
        return TransientModelError(
            f"{where}: server error (HTTP {status}): {detail}",
            "server_error",
            status,
            parse_retry_after(headers),
            headers,
        )
    if name in ("InternalServerError", "ServiceUnavailableError", "APIError"):
        return TransientModelError(f"{where}: server error: {detail}", "server_error", status)
    if (status is not None and 400 <= status < 500) or "BadRequest" in name:
        return PermanentModelError(
            f"{where}: bad request (HTTP {status or 400}): {detail}", "bad_request", status
        )
    return PermanentModelError(f"{where}: {name}: {detail}", "error", status)
