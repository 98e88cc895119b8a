"""The adaptive limiter on its own: what a 429, a Retry-After and x-ratelimit headers do."""

from __future__ import annotations

import asyncio
import time

from flock_es.models.limiter import AdaptiveLimiter, limiter_for, parse_reset


async def test_no_limit_until_a_429_then_the_accepted_calls() -> None:
    lim = AdaptiveLimiter("m")
    held = [lim.slot() for _ in range(10)]
    tickets = [await h.__aenter__() for h in held]
    assert lim.in_flight == 10 and not lim.limited
    tickets[0].rate_limited(None, None)  # 9 others still in flight: the provider took those
    await held[0].__aexit__(None, None, None)
    assert lim.limit == 9 and lim.snapshot()["limit"] == 9
    for h in held[1:]:
        await h.__aexit__(None, None, None)
    assert lim.in_flight == 0 and lim.limit is not None and 9 < lim.limit < 10  # grows slowly


async def test_a_full_budget_queues_and_a_release_lets_the_next_in() -> None:
    lim = AdaptiveLimiter("m")
    lim.limit = 1.0
    first = lim.slot()
    await first.__aenter__()
    second = lim.slot()  # kept: a dropped context manager would release its slot
    waiter = asyncio.ensure_future(second.__aenter__())
    await asyncio.sleep(0.01)
    assert not waiter.done() and lim.snapshot()["queued"] == 1
    await first.__aexit__(None, None, None)
    await asyncio.wait_for(waiter, 1)
    assert lim.in_flight == 1
    await second.__aexit__(None, None, None)


async def test_retry_after_pauses_the_whole_queue() -> None:
    lim = AdaptiveLimiter("m")
    async with lim.slot() as ticket:
        ticket.rate_limited(0.2, None)
    t0 = time.monotonic()
    async with lim.slot():
        pass
    assert time.monotonic() - t0 >= 0.15
    assert lim.rate_limited == 1


async def test_remaining_zero_pauses_until_the_reset() -> None:
    lim = AdaptiveLimiter("m")
    async with lim.slot() as ticket:
        ticket.answered(
            {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "150ms"}
        )
    assert 0.05 < lim.paused_for() <= 0.15


def test_reset_values_and_one_limiter_per_endpoint() -> None:
    assert parse_reset("6m0s") == 360.0 and parse_reset("1s") == 1.0
    assert parse_reset("120ms") == 0.12 and parse_reset("2.5") == 2.5
    assert parse_reset("soon") is None
    assert limiter_for("openai/x", "http://a/v1") is limiter_for("openai/x", "http://a/v1")
    assert limiter_for("openai/x", "http://a/v1") is not limiter_for("openai/x", "http://b/v1")
