"""The group commit of a writer whose driver blocks (SQLite's): a ``UnitQueue``
drained by a thread of its own, ``ThreadDrain``, apart from the asyncio drain
both writers share (``log/group_commit.py``) because only it decides when the
loop commits held units itself.

Units are held until the loop's current callbacks ran (a large one, ``RELEASE_AT``
events or more, is not: it is a group of its own), so a burst of them is one
commit; on a loop whose selector says when it is about to wait
(``flock_es.loop_wait``: a run's loop), they stay held while the loop is busy
(briefly), and if the loop would then only wait for them, the loop commits them
itself (no fsync if a timer is due soon, never waiting for another connection's
lock). Otherwise the thread commits them, and their outcome reaches the loop in
one hop; a unit nobody waits for (``enqueue``) never wakes the loop at all.

Example::

    class MyWriter(ThreadDrain):
        max_batch = 512
        def closed_error(self) -> Exception: return RuntimeError("closed")
        def commit_sync(self, events: list[Event]) -> None: ...  # one transaction
    writer.start_drain("my-writer")  # on the loop, once the connection is open
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from flock_es.domain.events import Event
from flock_es.log.event_stream import EventStream, StreamAborted, split_streams
from flock_es.log.group_commit import Unit, UnitQueue, settle
from flock_es.loop_wait import at_next_select

__all__ = [
    "HOLD_MAX",
    "HOLD_MAX_SYNCED",
    "INLINE_IDLE",
    "INLINE_IDLE_SYNCED",
    "INLINE_MAX_EVENTS",
    "RELEASE_AT",
    "ThreadDrain",
]

# The loop commits held units itself only if its next timer is at least this far
# off (seconds): a commit there takes a tenth of a millisecond or two of its time,
# one that syncs the disk (a paid answer) about half a millisecond to two.
INLINE_IDLE = 0.0005
INLINE_IDLE_SYNCED = 0.002
# Units are held at most this long (seconds) while the loop is busy, then committed:
# eight agents' outputs processed one after another on a cold CPU take about 0.5 ms.
HOLD_MAX = 0.001
HOLD_MAX_SYNCED = 0.002
# A larger group always goes to the thread: its commit (a big publish_many's, up to
# seconds) would block the loop's timers meanwhile (lease renewals, the progress
# line, agents' sleeps), where the thread's leaves the loop free to run them.
INLINE_MAX_EVENTS = 512
# A unit this large is a group on its own: it goes to the thread at once (with what
# was held before it), not held. Held, it waited for the loop's current callbacks, and
# a loop running several inline chunks in one iteration (each a few ms) held a decided
# unit, on which the next runs wait, until all were done: the thread then committed
# while the loop waited for it, and the two took turns instead of overlapping (issue 14).
RELEASE_AT = 256


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class ThreadDrain(UnitQueue):
    """A ``UnitQueue`` drained by a thread of its own (see the module docstring).

    The subclass sets ``max_batch``, calls ``start_drain`` once its connection
    is open, and gives ``commit_sync`` (one group in one transaction, in the
    drain thread), ``as_error`` and ``drain_ended`` (the thread's last act:
    close the connection). ``stop_drain`` commits what is queued and waits for
    the thread; if the event loop goes away first (a script that never closed
    its run), the thread still commits what was queued, then ends.
    """

    max_batch: int

    def commit_sync(self, events: list[Event]) -> None:
        raise NotImplementedError

    def commit_stream(self, stream: EventStream) -> tuple[int, int]:
        """An ``EventStream`` in one transaction, in the drain thread: the seqs of its
        first and last events."""
        raise NotImplementedError

    def as_error(self, exc: BaseException) -> BaseException:
        return exc

    def drain_ended(self) -> None:
        return None

    def start_drain(self, name: str) -> None:
        self._units: deque[Unit | None] = deque()
        self._held: list[Unit] = []
        self._cond = threading.Condition()
        self._stopping = False
        # The connection is in use (by the thread, or by the loop: ``_at_select``).
        self._busy = False
        # Outcomes the thread handed to the loop that the loop has not settled yet: while
        # any is on its way, the loop commits nothing itself (``_hand_over``).
        self._handed = 0
        self._held_at = 0.0
        # Whether someone waits for a held unit (``submit``): units nobody waits for
        # (``enqueue``: a task's start, a paid answer before its outputs) are held
        # while the loop is busy for as long as it stays busy, up to RELEASE_AT units.
        self._held_waited = False
        self._held_synced = False
        self._held_seen = 0
        self.inline_commits = 0  # commits made on the loop's thread (``_at_select``)
        # The first commit that failed: nothing commits after it (``group_commit.poisoned``).
        self._failed: BaseException | None = None
        self._loop = asyncio.get_running_loop()
        self._ended: asyncio.Future[None] = self._loop.create_future()
        # A daemon: a process that exits without closing its run must not hang on it.
        threading.Thread(target=self._drain_thread, name=name, daemon=True).start()
        self._task = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        try:
            await asyncio.shield(self._ended)
        except asyncio.CancelledError:  # the loop is shutting down without close()
            self._put(None)
            raise

    def _accepting(self) -> bool:
        return self._task is not None and not self._task.done() and not self._stopping

    def synced(self, events: list[Event]) -> bool:
        """Whether committing ``events`` syncs the disk (a paid answer: ``LogWriter``);
        true of a group if true of any part of it (held units are checked a part at a time)."""
        return False

    def commit_here(self, events: list[Event]) -> bool:
        """``commit_sync`` on the loop's thread; False (nothing done) if it would have
        to wait for something else first (the thread then commits them)."""
        self.commit_sync(events)
        return True

    def _put(self, unit: Unit | None) -> None:
        held = self._held
        if unit is not None:
            # Held until the loop's current callbacks are done, so a burst of units
            # (eight agents finishing at once, each with its unit) goes in one commit
            # and wakes the thread once, not once each while the loop still needs the
            # GIL (issue 14). Then, if the loop would only wait, it commits them itself.
            held.append(unit)
            if len(held) == 1:
                self._held_at = time.monotonic()
                self._held_waited = unit[1] is not None
                self._held_synced = False  # whether the first _held_seen units sync
                self._held_seen = 0
                if len(unit[0]) < RELEASE_AT:
                    if not at_next_select(self._loop, self._at_select):
                        self._loop.call_soon(self._release_held)
                    return
            elif len(unit[0]) < RELEASE_AT and (
                # Nobody waits for any of them: no one is late if they wait for the loop
                # (200 model agents starting in one iteration, each with its
                # task.started, went to the thread in ~20 commits, the thread taking
                # the GIL from the starts meanwhile; held, they are one commit).
                (unit[1] is None and not self._held_waited and len(held) < RELEASE_AT)
                or self._still_held(time.monotonic() - self._held_at)
            ):
                if unit[1] is not None:
                    self._held_waited = True
                return
            # A large unit, or units held longer than HOLD_MAX (HOLD_MAX_SYNCED) by a loop
            # that has not looked for I/O since (one long iteration): to the thread now.
            self._release_held()
            return
        with self._cond:
            if held:  # queued before the stop: committed before it
                self._units.extend(held)
                held.clear()
            self._stopping = True
            self._units.append(None)
            self._cond.notify()

    def _still_held(self, age: float) -> bool:
        """Whether units held for ``age`` seconds stay held when another one comes.

        Up to ``HOLD_MAX``; up to ``HOLD_MAX_SYNCED`` if they carry a paid answer, as
        in ``_at_select``: agents answering one after another (eight analysts, each
        answer processed as it arrives, over a millisecond or two) then share one
        synced commit, which the loop makes itself once it would only wait. Released
        at ``HOLD_MAX``, their commit went to a thread that could not run while the
        loop still needed the GIL, and the last answers then went to it too, adding
        its wake-up and the hop back to the path to the next agent (issue 14 (a)).
        """
        if age < HOLD_MAX:
            return True
        if age >= HOLD_MAX_SYNCED:
            return False
        # Past HOLD_MAX only: the held events are looked at then, each unit once (200
        # answers arriving together put a unit in this stretch each, and a scan of all
        # held events per unit grew with their square).
        if not self._held_synced:
            held = self._held
            fresh = [e for evs, _ in held[self._held_seen :] for e in evs]
            self._held_seen = len(held)
            self._held_synced = self.synced(fresh)
        return self._held_synced

    def submit_stream(self, stream: EventStream) -> None:
        # Straight to the thread, after the units held before it: the loop never
        # commits a stream itself (``_at_select``), whatever its size.
        if not self._accepting():
            stream.settle(0, 0, self.closed_error())
            return
        with self._cond:
            self._units.extend(self._held)
            self._held.clear()
            self._units.append((stream, None))
            self._cond.notify()

    def _release_held(self) -> None:
        held = self._held
        if held:
            with self._cond:
                self._units.extend(held)
                held.clear()
                self._cond.notify()

    def _at_select(self, timeout: float | None) -> bool:
        """Before the loop's next select: what to do with the held units.

        While the loop is busy (callbacks ready, or a timer due soon), they stay
        held, up to ``HOLD_MAX`` (``HOLD_MAX_SYNCED`` if the commit syncs):
        agents finishing together then share one commit (and one fsync), and the
        last one does not wait for an earlier one's commit before its own. Once
        the loop would only wait (no timer due within ``INLINE_IDLE``, or
        ``INLINE_IDLE_SYNCED`` for a commit that syncs), the thread is idle and
        they are at most ``INLINE_MAX_EVENTS`` events, the loop commits them itself: the commit then costs the transaction
        only, not also waking the thread and then the loop (tens of µs each from
        an idle CPU, milliseconds on a loaded machine), on the path from every
        commit to what it starts. Otherwise they go to the thread.
        """
        held = self._held
        if not held:
            return False
        events = [e for evs, _ in held for e in evs]
        synced = self.synced(events)
        idle = timeout is None or timeout >= (INLINE_IDLE_SYNCED if synced else INLINE_IDLE)
        if not idle and time.monotonic() - self._held_at < (
            HOLD_MAX_SYNCED if synced else HOLD_MAX
        ):
            at_next_select(self._loop, self._at_select)  # look again next time
            return False
        with self._cond:
            if (
                not idle
                or self._busy
                or self._units
                or self._handed
                or len(events) > INLINE_MAX_EVENTS
            ):
                self._units.extend(held)
                held.clear()
                self._cond.notify()
                return False
            self._busy = True  # the thread waits until this commit is done
        units = held[:]
        held.clear()
        exc: BaseException | None = self._failed
        done = exc is not None  # after a failed commit, none (``group_commit.poisoned``)
        try:
            if not done:
                done = self.commit_here(events)
        except Exception as err:  # the waiters must hear about it
            exc = self._failed = self.as_error(err)
            done = True
        finally:
            with self._cond:
                self._busy = False
                if not done:  # the thread commits them (before anything queued after)
                    self._units.extendleft(reversed(units))
                if self._units:
                    self._cond.notify()
        if not done:
            return False
        if exc is None:
            self.inline_commits += 1
        settle(units, exc)
        return True

    def _commit_group(self, events: list[Event]) -> BaseException | None:
        """Commit ``events`` in the thread, unless an earlier commit failed (then none
        is made: ``group_commit.poisoned``); the failure, if any."""
        if self._failed is None:
            try:
                self.commit_sync(events)
            except Exception as err:  # the waiters must hear about it
                self._failed = self.as_error(err)
        return self._failed

    def _commit_stream(self, stream: EventStream) -> tuple[int, int, BaseException | None]:
        """``_commit_group`` of a stream: its first and last seqs (0 if it failed)."""
        if self._failed is None:
            try:
                first, last = self.commit_stream(stream)
                return first, last, None
            except StreamAborted as err:  # its producer gave up: only its unit is lost
                return 0, 0, self.as_error(err)
            except Exception as err:
                self._failed = self.as_error(err)
        return 0, 0, self._failed

    def _take(self) -> tuple[list[Unit], bool]:
        """What is queued (at least one unit, up to ``max_batch`` events), and whether to
        stop; the connection is the thread's until ``_done``."""
        with self._cond:
            while not self._units or self._busy:
                self._cond.wait()
            units: list[Unit] = []
            size = 0
            queued = self._units
            while queued and (not units or size < self.max_batch):
                unit = queued.popleft()
                self._busy = True
                if unit is None:
                    return units, True
                units.append(unit)
                size += len(unit[0])
            return units, False

    def _done(self) -> None:
        with self._cond:
            self._busy = False

    def _hand_over(self, fn: Callable[..., None], *args: Any) -> None:
        """Call ``fn`` (which settles units) on the loop, one hop, from the thread before
        it is free.

        Units are settled, and so acted on, in the order they commit: until this
        hop lands, the loop commits no later unit itself (``_at_select``), which it
        would otherwise settle at once, ahead of these."""
        with self._cond:
            self._handed += 1
        self._call(self._handed_over, fn, *args)

    def _handed_over(self, fn: Callable[..., None], *args: Any) -> None:
        with self._cond:
            self._handed -= 1
        fn(*args)

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            self._loop.call_soon_threadsafe(fn, *args)

    def _commit_with_streams(self, units: list[Unit]) -> None:
        """Units and streams in order, each stream in its own transaction; whoever
        waits hears as each commits (not only once a long stream after it did)."""
        try:
            for stream, group in split_streams(units):
                if stream is not None:
                    self._hand_over(stream.settle, *self._commit_stream(stream))
                    continue
                exc = self._commit_group([e for evs, _ in group for e in evs])
                if waiting := [u for u in group if u[1] is not None]:
                    self._hand_over(settle, waiting, exc)
        finally:
            self._done()

    def _drain_thread(self) -> None:
        try:
            while True:
                units, stop = self._take()
                if units and any(isinstance(evs, EventStream) for evs, _ in units):
                    self._commit_with_streams(units)
                elif units:
                    try:
                        exc = self._commit_group([e for evs, _ in units for e in evs])
                        if waiting := [u for u in units if u[1] is not None]:
                            self._hand_over(settle, waiting, exc)  # one hop for the group
                    finally:
                        self._done()
                if stop:
                    return
        finally:
            with contextlib.suppress(Exception):
                self.drain_ended()
            self._call(_resolve, self._ended)
