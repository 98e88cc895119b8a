"""The adaptive limiter on its own: what a 429, a Retry-After and x-ratelimit headers do."""

from __future__ import annotations

import asyncio
import time

from flock_es.models.limiter import (
    FIRST_WAVE,
    PROBE_EVERY,
    PROBE_EVERY_MAX,
    SEED_WITHIN,
    AdaptiveLimiter,
    limiter_for,
    parse_reset,
    seed_limits,
)


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


async def test_calls_waiting_for_the_global_cap_are_not_at_the_provider() -> None:
    """With ``max_concurrent_calls``, a call holds its room here, then waits for the cap
    (``capped``). A 429 counts only the calls sent; one let in before it, still
    waiting for the cap, does not go out over the limit the 429 taught."""
    lim = AdaptiveLimiter("m")
    held = [lim.slot() for _ in range(10)]
    tickets = [await h.__aenter__() for h in held]
    for t in tickets[4:]:
        t.capped()  # 4 sent, 6 behind the cap
    tickets[3].rate_limited(None, None)
    assert lim.limit == 3 and lim.in_flight == 10  # the 3 others sent, not 9
    await held[3].__aexit__(None, None, None)
    assert not tickets[4].sent()  # the cap let it through, but 3 are at the provider
    tickets[4].requeue()
    await held[4].__aexit__(None, None, None)
    assert lim.limit == 3  # given back unsent: no success to grow on
    await held[0].__aexit__(None, None, None)  # an answer: room for one
    assert tickets[5].sent()
    for h in held[1:3] + held[5:]:
        await h.__aexit__(None, None, None)  # the rest cancelled while capped
    assert lim.in_flight == 0 and lim.capped == 0


async def test_before_any_answer_a_first_wave_then_one_more_per_answer() -> None:
    lim = AdaptiveLimiter("m")
    held = [lim.slot() for _ in range(FIRST_WAVE + 3)]
    for h in held[:FIRST_WAVE]:
        await h.__aenter__()
    rest = [asyncio.ensure_future(h.__aenter__()) for h in held[FIRST_WAVE:]]
    await asyncio.sleep(0.01)
    assert lim.in_flight == FIRST_WAVE and lim.snapshot()["queued"] == 3
    assert not lim.limited  # no limit learned: none is shown
    await held[0].__aexit__(None, None, None)  # an answer: its place, and one more
    await asyncio.sleep(0.01)
    assert sum(w.done() for w in rest) == 2 and lim.in_flight == FIRST_WAVE + 1
    # A 429 now: the calls still in flight are the provider's budget, as before.
    ticket = await rest[0]
    ticket.rate_limited(None, None)
    assert lim.limit == FIRST_WAVE
    rest[2].cancel()
    for h in held[1 : FIRST_WAVE + 2]:
        await h.__aexit__(None, None, None)
    assert lim.in_flight == 0 and lim.snapshot()["queued"] == 0


async def _calls(lim: AdaptiveLimiter, n: int, rate_limit_last: bool = False) -> None:
    """``n`` calls in flight at once; all answered, or the last one turned away."""
    held = [lim.slot() for _ in range(n)]
    tickets = [await h.__aenter__() for h in held]
    if rate_limit_last:
        tickets[-1].rate_limited(None, None)
    for h in held:
        await h.__aexit__(None, None, None)


async def _answers_until(lim: AdaptiveLimiter, level: float) -> int:
    """Answered calls, one at a time, until the limit reaches ``level``: how many."""
    n = 0
    while lim.limit is not None and lim.limit < level:
        await _calls(lim, 1)
        n += 1
    return n


async def test_probes_that_get_a_429_come_more_and_more_rarely() -> None:
    lim = AdaptiveLimiter("m")
    await _calls(lim, 17, rate_limit_last=True)  # the provider takes 16
    assert int(lim.limit or 0) == 16 and lim.probe_every == PROBE_EVERY
    first = await _answers_until(lim, 17)  # growing into the level of the 429: slowly
    await _calls(lim, 17, rate_limit_last=True)  # the probe: 429 again
    assert int(lim.limit or 0) == 16 and lim.probe_every == 2 * PROBE_EVERY
    second = await _answers_until(lim, 17)
    assert second >= 2 * first - 2, (first, second)
    for _ in range(10):
        await _answers_until(lim, 17)
        await _calls(lim, 17, rate_limit_last=True)
    assert lim.probe_every == PROBE_EVERY_MAX  # and no further


async def test_a_limit_grown_a_call_past_the_last_429_grows_as_fast_as_before() -> None:
    lim = AdaptiveLimiter("m")
    await _calls(lim, 9, rate_limit_last=True)
    await _answers_until(lim, 9)
    await _calls(lim, 9, rate_limit_last=True)  # at the level again: a failed probe
    assert lim.probe_every == 2 * PROBE_EVERY and lim.ceiling == 9
    await _answers_until(lim, 10)  # the provider took more meanwhile: no 429 past 9
    await _calls(lim, 1)
    assert lim.ceiling is None and lim.probe_every == PROBE_EVERY
    assert await _answers_until(lim, 11) <= 11  # a window of answers a call, as at first


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


async def test_the_queue_is_served_in_order_however_many_calls_end_at_once() -> None:
    lim = AdaptiveLimiter("m")
    lim.limit = 3.0
    order: list[int] = []
    done = asyncio.Event()

    async def call(n: int, seconds: float) -> None:
        async with lim.slot():
            order.append(n)
            await asyncio.sleep(seconds)
        if len(order) == 33:
            done.set()

    # Three hold the budget; thirty queue; the three end together, then one by one.
    tasks = [asyncio.ensure_future(call(n, 0.01 if n < 3 else 0.001 * (n % 4))) for n in range(33)]
    await asyncio.wait_for(done.wait(), 5)
    await asyncio.gather(*tasks)
    assert order == list(range(33))
    assert lim.in_flight == 0 and lim.snapshot()["queued"] == 0


async def test_a_call_cancelled_in_the_queue_or_on_its_turn_passes_the_turn_on() -> None:
    lim = AdaptiveLimiter("m")
    lim.limit = 1.0
    entered: list[str] = []

    async def call(name: str) -> None:
        async with lim.slot():
            entered.append(name)

    async def held_then_released(queued: str) -> asyncio.Future[None]:
        """A slot held while ``queued`` queues; released as failed (the limit stays 1)."""
        holder = lim.slot()
        ticket = await holder.__aenter__()
        task = asyncio.ensure_future(call(queued))
        await asyncio.sleep(0.01)
        ticket.failed()
        await holder.__aexit__(None, None, None)
        return task

    holder = lim.slot()
    ticket = await holder.__aenter__()
    a, b, c = (asyncio.ensure_future(call(n)) for n in "abc")
    await asyncio.sleep(0.01)
    b.cancel()  # cancelled while queued
    await asyncio.sleep(0.01)
    ticket.failed()
    await holder.__aexit__(None, None, None)  # a's turn: woken...
    a.cancel()  # ...and cancelled before it runs: the turn goes to c
    await asyncio.wait_for(c, 1)
    assert entered == ["c"] and a.cancelled() and b.cancelled()
    assert lim.in_flight == 0 and lim.snapshot()["queued"] == 0
    # No turn was lost on the way: the next call queued behind a held slot gets in.
    lim.limit = 1.0  # (c's answer grew it)
    await asyncio.wait_for(await held_then_released("d"), 1)
    assert entered == ["c", "d"]


async def test_waiting_calls_go_in_by_priority_then_by_their_place_in_line() -> None:
    lim = AdaptiveLimiter("m")
    lim.limit = 1.0
    holder = lim.slot()
    ticket = await holder.__aenter__()
    order: list[str] = []

    async def call(name: str, priority: int = 0, place: int | None = None) -> None:
        async with lim.slot(priority, place) as t:
            order.append(name)
            t.failed()  # (the limit stays 1)

    early = lim.place()  # a call that came first, turned away, and retries later
    tasks = [asyncio.ensure_future(call(n)) for n in ("b", "c")]
    await asyncio.sleep(0.01)
    tasks.append(asyncio.ensure_future(call("vip", priority=5)))
    tasks.append(asyncio.ensure_future(call("retry", place=early)))
    await asyncio.sleep(0.01)
    ticket.failed()
    await holder.__aexit__(None, None, None)
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert order == ["vip", "retry", "b", "c"]


def test_a_resumed_run_s_limiters_start_from_the_recent_limits_its_log_recorded() -> None:
    now = time.time()
    made_before = limiter_for("openai/seeded", "http://seed/v1")
    learned = limiter_for("openai/learned", "http://seed/v1")
    learned.limit = 30.0
    seed_limits(
        {
            "openai/seeded @ http://seed/v1": {"limit": 8, "ts": now - 5},
            "openai/later @ http://seed/v1": {"limit": 4, "ts": now - 5},
            "openai/learned @ http://seed/v1": {"limit": 8, "ts": now - 5},
            "openai/stale @ http://seed/v1": {"limit": 8, "ts": now - SEED_WITHIN - 1},
            "openai/none @ http://seed/v1": {"limit": None, "ts": now},
        },
        now,
    )
    assert made_before.limit == 8 and made_before.ceiling == 9  # growing past 8: a probe
    assert limiter_for("openai/later", "http://seed/v1").limit == 4  # made after the seed
    assert learned.limit == 30  # what this process learned itself stays
    assert limiter_for("openai/stale", "http://seed/v1").limit is None  # a first wave
    assert limiter_for("openai/none", "http://seed/v1").limit is None
