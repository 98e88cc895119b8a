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

# The model-call errors live in flock_es.errors (one hierarchy); imported here for
# the clients that raise them.
from flock_es.errors import (
    MalformedResponseError,
    ModelCallError,
    PermanentModelError,
    TransientModelError,
)
from flock_es.models.deadline import within
from flock_es.models.limiter import AdaptiveLimiter, Ticket

__all__ = [
    "FailedAttempt",
    "MalformedResponseError",
    "ModelCallError",
    "PermanentModelError",
    "RetryPolicy",
    "TransientModelError",
    "call_with_retries",
    "parse_retry_after",
    "recorded_failure",
]

# One generator for every call's backoff jitter, seeded once: ``random.Random()``
# seeds itself from 2.5 KB of os.urandom, ~0.2 ms on a VM, which a call made per
# model call on the event loop (8 analysts: 1.5 ms of the seed's critical path).
_JITTER = random.Random()

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds for one model call.

    ``max_attempts`` counts the first try and every failure except rate limits.
    The n-th retry waits a random time between 0 and ``base_delay * 2**(n-1)``
    seconds (at most ``max_delay``; "full jitter", so retries do not land
    together), unless the server sent ``Retry-After`` (then that, capped at
    ``max_delay``, plus up to ``jitter`` of it). ``rate_limit_retries``: how
    many 429s one call may get before it fails (a rate-limited provider slows a
    burst down, it should not fail it). ``timeout`` bounds one attempt (the wait
    for the model's shared concurrency budget is not part of it).
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
    rate_limit_retries: int = 30

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
            return base + base * self.jitter * rng.random()
        cap = min(self.base_delay * 2.0 ** (min(retry, 30) - 1), self.max_delay)
        return cap * rng.random()


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
    limiter: dict[str, Any] | None = None


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    on_failure: Callable[[FailedAttempt], None],
    slot: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
    rng: random.Random | None = None,
    limiter: AdaptiveLimiter | None = None,
    what: str = "the model",
    ready: Callable[[], Awaitable[Any]] | None = None,
    priority: int = 0,
) -> tuple[T, int]:
    """Run ``call`` until it answers; returns the answer and the attempt that gave it.

    Each attempt first waits for room in the model's ``limiter`` (its shared
    concurrency budget), then holds a ``slot`` (the global cap on calls in
    flight) and is bounded by ``policy.timeout``; the backoff waits between
    attempts hold neither. Transient failures are retried (429s up to
    ``policy.rate_limit_retries``, the others up to ``policy.max_attempts``);
    the last one, or any permanent failure, is raised after ``on_failure`` has
    seen it. ``what`` names the model in timeout messages. ``ready`` is awaited
    first, outside every timeout (the client finishing its start-up, such as
    litellm's import in the background). ``priority`` orders the call among
    those waiting for the ``limiter``; its retries keep its first place in line.
    """
    if ready is not None:
        await ready()
    place = limiter.place() if limiter is not None else 0
    attempt = failures = limited = 0
    while True:
        attempt += 1
        if limiter is None and slot is None:
            # No budget and no cap (the common case): no context managers to enter and
            # leave, and ``_attempt``'s coroutine skipped, a frame less on the call's
            # path each time it suspends and resumes (issue 14 (e)).
            exc, latency = await _timed(call, policy, None, what)
        else:
            exc, latency = await _attempt(call, policy, slot, limiter, what, (priority, place))
        if not isinstance(exc, ModelCallError):
            return exc, attempt
        if exc.outcome == "rate_limited":
            limited += 1
            retry = limited <= policy.rate_limit_retries
        else:
            failures += 1
            retry = isinstance(exc, TransientModelError) and failures < policy.max_attempts
        retry = retry and isinstance(exc, TransientModelError)
        # 429s back off gently (the limiter queues the retries anyway): at most 8x base.
        nth = min(limited, 4) if exc.outcome == "rate_limited" else max(failures, 1)
        wait = policy.delay(nth, exc.retry_after, rng or _JITTER) if retry else None
        snapshot = limiter.snapshot() if limiter is not None and limiter.limited else None
        on_failure(
            FailedAttempt(
                attempt, exc.outcome, str(exc), exc.status, retry, wait, latency, snapshot
            )
        )
        if not retry:
            raise _last_error(exc, attempt)
        await asyncio.sleep(wait or 0.0)


def _last_error(exc: ModelCallError, attempt: int) -> ModelCallError:
    """What a call raises when its attempt ``attempt`` failed with ``exc`` and is not
    retried: ``exc``, or for a transient error after several attempts, one that says so."""
    if isinstance(exc, TransientModelError) and attempt > 1:
        gave_up = TransientModelError(
            f"{exc} (gave up after {attempt} attempts)", exc.outcome, exc.status
        )
        gave_up.raw = exc.raw
        return gave_up
    return exc


TRANSIENT_OUTCOMES = frozenset(
    {"rate_limited", "server_error", "connection", "timeout", "malformed"}
)
"""The outcomes of flock-es's ``TransientModelError``s; any other is a permanent one's."""


def recorded_failure(
    outcome: str, error: str, status: int | None = None, attempt: int = 1
) -> ModelCallError:
    """The error ``call_with_retries`` raised for a call whose last attempt (``attempt``)
    failed as recorded in ``model.attempt`` (``will_retry`` false; ``outcome``, ``error``,
    ``status``): what a replay raises again at that call, instead of calling a model.

    Example: ``recorded_failure("bad_request", "...: bad request (HTTP 400): x", 400)``
    is the ``PermanentModelError`` the live call raised.
    """
    exc: ModelCallError
    if outcome == "malformed":
        exc = MalformedResponseError(error, raw="")
    elif outcome in TRANSIENT_OUTCOMES:
        exc = TransientModelError(error, outcome, status)
    else:
        exc = PermanentModelError(error, outcome, status)
    return _last_error(exc, attempt)


async def _attempt(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    slot: Callable[[], AbstractAsyncContextManager[Any]] | None,
    limiter: AdaptiveLimiter | None,
    what: str,
    line: tuple[int, int] = (0, 0),
) -> tuple[T | ModelCallError, float]:
    """One attempt under a budget or a cap: the answer, or the error it ended with; and
    its latency in ms (``call_with_retries`` calls ``_timed`` itself without either).
    ``line``: the call's priority and place among those waiting for the budget."""
    if limiter is None:
        async with slot() if slot is not None else contextlib.nullcontext():
            return await _timed(call, policy, None, what)
    while True:
        async with limiter.slot(*line) as ticket:
            if slot is None:
                return await _timed(call, policy, ticket, what)
            ticket.capped()  # its room here is taken, but it is not at the provider yet
            async with slot():
                if ticket.sent():
                    return await _timed(call, policy, ticket, what)
            ticket.requeue()  # a limit learned while it waited has no room for it


async def _timed(
    call: Callable[[], Awaitable[T]], policy: RetryPolicy, ticket: Ticket | None, what: str
) -> tuple[T | ModelCallError, float]:
    """The attempt itself, bounded by ``policy.timeout``; the ``ticket`` of the model's
    budget (if it has one) hears how it went."""
    t0 = time.perf_counter()
    try:
        answer = await (within(policy.timeout, call()) if policy.timeout else call())
    except TimeoutError:
        exc: ModelCallError = TransientModelError(
            f"{what}: no answer within {policy.timeout:g} s (RetryPolicy.timeout)", "timeout"
        )
    except ModelCallError as err:
        exc = err
    else:
        if ticket is not None:
            ticket.answered(getattr(answer, "headers", None))
        return answer, (time.perf_counter() - t0) * 1000.0
    if ticket is not None:
        if exc.outcome == "rate_limited":
            ticket.rate_limited(exc.retry_after, getattr(exc, "headers", None))
        else:
            ticket.failed()
            if exc.retry_after:  # a 503's Retry-After holds the whole model's queue too
                ticket.limiter.pause(exc.retry_after)
    return exc, (time.perf_counter() - t0) * 1000.0
