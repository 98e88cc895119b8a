"""Client-side adaptive concurrency: one shared budget per model and endpoint.

A provider that allows N calls in flight answers the N+1st with a 429. Every
agent of a run that talks to the same model at the same endpoint shares one
``AdaptiveLimiter``, which learns N instead of letting each call find out on
its own (retries landing together, 429 after 429, tasks failing):

* until the first 429 it lets ``FIRST_WAVE`` calls be in flight, and one
  more for each answer (so the first wave doubles with every round of
  answers, up to ``max_limit``): 200 agents against a provider without a
  limit really are 200 calls in flight, and 2,000 are not 2,000 requests at
  once. Unbounded, they were: the loop ran the first steps of all 2,000
  calls before it read the first 429, four seconds after it came, and 1,950
  of 2,000 calls got a 429 from a provider allowing 16 in flight (issue 14's
  realistic case);
* a 429 caps the limit at the number of calls still in flight (the ones the
  provider accepted), then it grows again by one per window of successes
  (additive increase, multiplicative decrease: AIMD), ``PROBE_EVERY`` times
  slower where it would pass the level that got the last 429 (a probe there
  may cost everyone a ``Retry-After`` pause), and twice slower again after
  each probe that gets a 429, up to ``PROBE_EVERY_MAX`` times: a provider
  whose limit stays put is probed more and more rarely (at a fixed eight, a
  2,000-call run with ``Retry-After: 1`` made 14 probes, each a second's
  pause for every call, and took 58.6 s; now 4 and 48.1 s). A limit grown a
  whole call past that level clears it: growth is as fast as before again;
* calls that hold room here but still wait for the run's global cap
  (``max_concurrent_calls``; ``Ticket.capped``) are not at the provider: a 429
  counts only the others, and a call the cap lets through when those fill the
  limit learned meanwhile waits again (``Ticket.requeue``). Before, a first wave
  of 200 behind a cap of 16 went out at the cap's pace against a provider
  allowing 8: 156 to 191 429s for 200 calls, now 9;
* a ``Retry-After`` (or ``x-ratelimit-remaining-requests: 0`` with its reset
  time) pauses the whole model's queue, not only the call that got it;
* calls waiting for room go in by priority (the subscription's ``priority=``),
  then by their place in line, which a call's retries keep: a call turned away
  waits ahead of those that came after it, not behind every call queued
  meanwhile (a queue of 1,700 behind the first wave's 429s);
* a resumed run starts from the limit its log recorded last (``seed_limits``),
  if that is recent (``SEED_WITHIN``): not from a first wave, which against a
  provider that allowed 16 was 240 more 429s, and a pause for everyone if the
  provider sent ``Retry-After``.

Waiting for the limiter is not part of a call's timeout. Its state goes into
the log (``model.attempt`` and ``model.called`` carry a ``limiter`` snapshot
once a limit has been learned), so the progress line and the TUI show it.

Example::

    limiter = limiter_for("openai/gpt-4o", "https://api.openai.com/v1")
    async with limiter.slot() as ticket:
        ...  # the call; then ticket.rate_limited(retry_after) on a 429
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FIRST_WAVE",
    "PROBE_EVERY",
    "PROBE_EVERY_MAX",
    "SEED_WITHIN",
    "AdaptiveLimiter",
    "Ticket",
    "limiter_for",
    "parse_reset",
    "seed_limits",
]

FIRST_WAVE = 256
"""Calls a limiter lets be in flight before any answer (see the module docstring)."""
PROBE_EVERY = 8.0
"""How much slower the limit grows past the level of the last 429, at first."""
PROBE_EVERY_MAX = 256.0
"""... and at most, after probes there that each got a 429."""
SEED_WITHIN = 600.0
"""How old (seconds) a recorded limit may be for a resumed run to start from it."""

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_reset(value: object) -> float | None:
    """Seconds in an ``x-ratelimit-reset-*`` value: ``"1s"``, ``"6m0s"``, ``"120ms"``, ``"2.5"``."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _header(headers: Mapping[str, Any] | None, name: str) -> Any:
    if not headers:
        return None
    for key in (name, f"llm_provider-{name}"):
        try:
            value = headers.get(key)
        except (AttributeError, TypeError):
            return None
        if value is not None:
            return value
    return None


@dataclass(slots=True)
class Ticket:
    """One call's place in the budget; tells the limiter how the call went."""

    limiter: AdaptiveLimiter
    outcome: str = "ok"
    waiting: bool = False  # for the global cap, not yet at the provider

    def capped(self) -> None:
        """The call waits for the run's global cap before it goes out."""
        self.waiting = True
        self.limiter.capped += 1

    def sent(self) -> bool:
        """The call got past the cap: whether it may go to the provider now. Not if a
        429 meanwhile set a limit that the calls already there fill (``requeue`` it):
        calls let in before any 429 would otherwise all go out at the cap's pace."""
        self.uncap()
        lim = self.limiter
        return lim.limit is None or lim.in_flight - lim.capped <= lim.limit

    def uncap(self) -> None:
        """No longer waiting for the global cap (it got past it, or it ended)."""
        if self.waiting:
            self.waiting = False
            self.limiter.capped -= 1

    def requeue(self) -> None:
        """The call gives its room back unsent (``sent`` said no): it waits again."""
        self.outcome = "requeued"

    def rate_limited(self, retry_after: float | None, headers: Mapping[str, Any] | None) -> None:
        self.outcome = "rate_limited"
        self.limiter.on_rate_limited(retry_after, headers)

    def failed(self) -> None:
        self.outcome = "error"

    def answered(self, headers: Mapping[str, Any] | None = None) -> None:
        self.outcome = "ok"
        self.limiter.on_headers(headers)


class AdaptiveLimiter:
    """AIMD concurrency limit for one model at one endpoint (see the module docstring)."""

    def __init__(self, name: str, max_limit: int = 1024) -> None:
        self.name = name
        self.max_limit = max_limit
        self.limit: float | None = None  # None: no limit learned yet
        # Until one is: the calls let be in flight, one more per answer (slow start).
        self.opening = float(min(FIRST_WAVE, max_limit))
        # Calls in flight when the provider last said 429: growing past it is a probe,
        # and each probe may cost a Retry-After pause for everyone, so it is rare.
        self.ceiling: float | None = None
        self.probe_every = PROBE_EVERY
        self.in_flight = 0
        self.capped = 0  # of those in flight, waiting for the global cap (``Ticket.capped``)
        self.paused_until = 0.0
        self.rate_limited = 0
        # A heap: higher priority first, then the earlier place in line.
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._places = itertools.count()
        self._woken = 0  # waiters woken whose turn has not come yet
        self._wake_handle: asyncio.TimerHandle | None = None

    def seed(self, limit: int) -> None:
        """Start from ``limit``, learned earlier (``seed_limits``), as if the provider
        had just said 429 above it: growing past it is a probe. Only a limiter that
        has learned nothing yet and has nothing in flight takes it."""
        if self.limit is None and self.in_flight == 0 and limit >= 1:
            self.limit = float(min(limit, self.max_limit))
            self.ceiling = self.limit + 1.0

    # --- state -------------------------------------------------------------

    @property
    def limited(self) -> bool:
        """Whether a limit has been learned (the provider said 429 at least once)."""
        return self.limit is not None

    def paused_for(self) -> float:
        return max(self.paused_until - time.monotonic(), 0.0)

    def snapshot(self) -> dict[str, Any]:
        """What the log records and the progress line shows."""
        return {
            "key": self.name,
            "in_flight": self.in_flight,
            "limit": None if self.limit is None else int(self.limit),
            "queued": len(self._waiters),
            "paused_for": round(self.paused_for(), 3),
            "rate_limited": self.rate_limited,
        }

    def _free(self) -> int:
        """Calls that may start now: the budget less those in flight and those woken
        whose turn has not come yet (woken again for the same room, the calls beyond
        it queued again at the back, and the queue lost its order)."""
        budget = int(self.opening if self.limit is None else self.limit)
        return budget - self.in_flight - self._woken

    # --- acquire / release -------------------------------------------------

    def place(self) -> int:
        """A place in line for one call, which its retries keep (``slot(place=)``)."""
        return next(self._places)

    @asynccontextmanager
    async def slot(self, priority: int = 0, place: int | None = None) -> AsyncIterator[Ticket]:
        """Wait for room (and for any pause to end), hold it for one call. Waiting
        calls go in by ``priority`` (higher first), then by ``place`` (``place()``;
        a new one if None)."""
        await self._acquire(priority, self.place() if place is None else place)
        ticket = Ticket(self)
        try:
            yield ticket
        finally:
            self._release(ticket)

    async def _acquire(self, priority: int, place: int) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.paused_for() == 0 and self._free() > 0 and not self._waiters:
                self.in_flight += 1
                return
            fut: asyncio.Future[None] = loop.create_future()
            entry = (-priority, place, fut)
            heapq.heappush(self._waiters, entry)
            if self.paused_for() > 0:
                self._schedule_wake(self.paused_for())
            try:
                await fut
            except asyncio.CancelledError:
                if not fut.cancelled():  # it was woken: pass the turn on
                    self._woken -= 1
                    self._wake()
                elif entry in self._waiters:  # (``_wake`` drops those it finds done)
                    self._waiters.remove(entry)
                    heapq.heapify(self._waiters)
                raise
            self._woken -= 1
            if self.paused_for() == 0 and self._free() > 0:
                self.in_flight += 1
                self._wake()  # room left over goes to the next in line
                return
            # Woken, but a pause began or the limit shrank meanwhile: back to its place.

    def _release(self, ticket: Ticket) -> None:
        self.in_flight -= 1
        ticket.uncap()  # (a call cancelled while it waited for the cap)
        if ticket.outcome == "ok" and self.limit is None:
            self.opening = min(self.opening + 1.0, float(self.max_limit))
        elif ticket.outcome == "ok" and self.limit is not None:
            step = 1.0 / max(self.limit, 1.0)
            ceiling = self.ceiling
            if ceiling is not None and self.limit >= ceiling + 1.0:
                # Past the level of the last 429 by a whole call, no 429 since: it moved.
                self.ceiling, self.probe_every = None, PROBE_EVERY
            elif ceiling is not None and self.limit + 1.0 >= ceiling:
                step /= self.probe_every  # a probe above the last known limit: rare
            self.limit = min(self.limit + step, float(self.max_limit))
        self._wake()

    def _wake(self) -> None:
        wait = self.paused_for()
        if wait > 0:
            self._schedule_wake(wait)
            return
        room = self._free()
        while room > 0 and self._waiters:
            fut = heapq.heappop(self._waiters)[2]
            if not fut.done():
                fut.set_result(None)
                self._woken += 1
                room -= 1

    def _schedule_wake(self, delay: float) -> None:
        if self._wake_handle is not None and not self._wake_handle.cancelled():
            self._wake_handle.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._wake_handle = loop.call_later(delay + 0.001, self._wake)

    # --- what the provider said ---------------------------------------------

    def on_rate_limited(self, retry_after: float | None, headers: Mapping[str, Any] | None) -> None:
        """A 429: the calls still in flight are what the provider accepts."""
        self.rate_limited += 1
        sent = self.in_flight - self.capped  # at the provider (the one refused included)
        if self.ceiling is not None and sent >= self.ceiling:
            # A probe at the level of the last 429 got one too: the next waits longer.
            self.probe_every = min(self.probe_every * 2.0, PROBE_EVERY_MAX)
        accepted = max(sent - 1, 1)
        self.ceiling = float(sent)
        current = self.limit if self.limit is not None else self.opening
        self.limit = float(max(min(current, accepted), 1))
        if retry_after:
            self.pause(retry_after)
        self.on_headers(headers)

    def on_headers(self, headers: Mapping[str, Any] | None) -> None:
        """``x-ratelimit-remaining-requests: 0`` pauses the queue until its reset time."""
        remaining = _header(headers, "x-ratelimit-remaining-requests")
        if remaining is None:
            return
        try:
            left = int(float(remaining))
        except (TypeError, ValueError):
            return
        if left <= 0:
            reset = parse_reset(_header(headers, "x-ratelimit-reset-requests"))
            if reset:
                self.pause(reset)

    def pause(self, seconds: float) -> None:
        """Hold every queued and new call of this model for ``seconds``."""
        until = time.monotonic() + max(seconds, 0.0)
        if until > self.paused_until:
            self.paused_until = until
            self._schedule_wake(seconds)


_limiters: dict[tuple[str, str], AdaptiveLimiter] = {}


def limiter_for(model: str, endpoint: str | None) -> AdaptiveLimiter:
    """The one limiter of ``model`` at ``endpoint`` in this process."""
    key = (model, endpoint or "")
    found = _limiters.get(key)
    if found is None:
        name = model if not endpoint else f"{model} @ {endpoint}"
        found = _limiters[key] = AdaptiveLimiter(name)
        if name in _seeds:
            found.seed(_seeds[name])
    return found


_seeds: dict[str, int] = {}


def seed_limits(recorded: Mapping[str, Mapping[str, Any]], now: float) -> None:
    """Start this process's limiters from what a run's log recorded last (the state's
    ``limiters``: a snapshot by limiter name, with its event's ``ts``), for those
    recorded within ``SEED_WITHIN`` of ``now``. Limiters made later take theirs when
    made; one that has learned a limit of its own keeps it.

    Example::

        seed_limits({"openai/gpt-4o": {"limit": 16, "ts": time.time()}}, time.time())
    """
    for name, snap in recorded.items():
        limit, ts = snap.get("limit"), snap.get("ts")
        if not isinstance(limit, int) or not isinstance(ts, int | float):
            continue
        if now - ts > SEED_WITHIN:
            continue
        _seeds[name] = limit
        for lim in _limiters.values():
            if lim.name == name:
                lim.seed(limit)
