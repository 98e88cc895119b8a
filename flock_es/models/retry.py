"""Which model-call failures are worth another attempt, and how long to wait first.

A client raises ``TransientModelError`` for what may pass (rate limits, 5xx,
connection errors, timeouts) and ``PermanentModelError`` for what will not
(bad key, bad request). ``call_with_retries`` runs the attempts, waiting with
exponential backoff and jitter, or as long as the server's ``Retry-After``
asks, and reports every failed attempt so the engine can record it.

Example::

    policy = RetryPolicy(max_attempts=5, base_delay=0.5)
    flock = Flock("openai/gpt-4.1", retry=policy)
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from flock_es.errors import ModelError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds for one model call.

    ``max_attempts`` counts the first try. The n-th retry waits
    ``base_delay * 2**(n-1)`` seconds (at most ``max_delay``), plus up to
    ``jitter`` of that at random, unless the server sent ``Retry-After`` (then
    that, capped at ``max_delay``). ``timeout`` bounds one attempt.
    ``validation_retries``: how many times an answer that does not validate is
    sent back with the error. ``max_tool_rounds`` bounds tool-call round trips.
    """

    max_attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    jitter: float = 0.25
    timeout: float = 120.0
    validation_retries: int = 2
    max_tool_rounds: int = 8

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1")
        if min(self.base_delay, self.max_delay, self.jitter, self.timeout) < 0:
            raise ValueError("RetryPolicy delays, jitter and timeout must not be negative")
        if self.validation_retries < 0 or self.max_tool_rounds < 1:
            raise ValueError("RetryPolicy.validation_retries >= 0, max_tool_rounds >= 1")

    def delay(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        if retry_after is not None:
            base = min(max(retry_after, 0.0), self.max_delay)
            return base + base * 0.1 * rng.random()
        base = min(self.base_delay * 2.0 ** (retry - 1), self.max_delay)
        return base + base * self.jitter * rng.random()


class ModelCallError(ModelError):
    """A model call that failed; ``outcome`` names the kind, ``status`` the HTTP status."""

    outcome = "error"

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class TransientModelError(ModelCallError):
    """May succeed if tried again: 429, 5xx, connection errors, timeouts."""

    def __init__(
        self,
        message: str,
        outcome: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status, retry_after)
        self.outcome = outcome


class PermanentModelError(ModelCallError):
    """Will fail again: authentication, permission, bad request, unknown model."""

    def __init__(self, message: str, outcome: str, status: int | None = None) -> None:
        super().__init__(message, status)
        self.outcome = outcome


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(float(ms) / 1000.0, 0.0)
        value = headers.get("retry-after")
    except (AttributeError, TypeError, ValueError):
        return None
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """One attempt that did not produce an answer, as reported to ``on_failure``."""

    attempt: int
    outcome: str
    error: str
    status: int | None
    will_retry: bool
    retry_in: float | None
    latency_ms: float


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    on_failure: Callable[[FailedAttempt], None],
    slot: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
    rng: random.Random | None = None,
) -> tuple[T, int]:
    """Run ``call`` until it answers; returns the answer and the attempt that gave it.

    Each attempt holds a ``slot`` (the global cap on calls in flight) and is
    bounded by ``policy.timeout``; the backoff waits between attempts hold no
    slot. Transient failures are retried up to ``policy.max_attempts``; the
    last one, or any permanent failure, is raised after ``on_failure`` has
    seen it.
    """
    rng = rng or random.Random()
    attempt = 0
    while True:
        attempt += 1
        async with slot() if slot is not None else contextlib.nullcontext():
            t0 = time.perf_counter()
            try:
                async with asyncio.timeout(policy.timeout or None):
                    return await call(), attempt
            except TimeoutError:
                exc: ModelCallError = TransientModelError(
                    f"no answer within {policy.timeout:g} s", "timeout"
                )
            except ModelCallError as err:
                exc = err
        latency = (time.perf_counter() - t0) * 1000.0
        retry = isinstance(exc, TransientModelError) and attempt < policy.max_attempts
        wait = policy.delay(attempt, exc.retry_after, rng) if retry else None
        on_failure(FailedAttempt(attempt, exc.outcome, str(exc), exc.status, retry, wait, latency))
        if not retry:
            if isinstance(exc, TransientModelError) and attempt > 1:
                raise TransientModelError(
                    f"{exc} (gave up after {attempt} attempts)", exc.outcome, exc.status
                ) from None
            raise exc
        await asyncio.sleep(wait or 0.0)
