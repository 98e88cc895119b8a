"""Timers of the running event loop woken on time, not up to a millisecond late.

asyncio's selector loop sleeps in ``epoll_wait``, whose timeout is whole
milliseconds: the selector rounds the wait for the next timer *up* to the next
millisecond, so every ``asyncio.sleep`` (an agent's own, a batch timeout) and
every ``call_later`` resumes up to 1 ms after its deadline, 0.5 ms on average.
In the seed scenario that is two levels of agents, each about a millisecond
late (issue 14).

``make_timers_precise(loop)`` gives the loop's epoll selector a ``timerfd``
armed ``SPIN`` (0.25 ms) before the deadline (nanoseconds, ``CLOCK_MONOTONIC``,
the clock of ``loop.time()``): epoll then returns just before the timer is
due, and the loop looks for I/O without waiting until it is (waking a thread
from an idle CPU takes about 0.1 ms on a virtual machine, which every wait
paid on top of its deadline; the spin costs at most ``SPIN`` of CPU a wake-up).
The millisecond timeout stays as a backstop. The selector also calls what
``flock_es.loop_wait.at_next_select`` registered before each select (the log
writer's commits on the loop's thread). The timer's own readiness is
consumed here and never reaches the loop. A deadline already armed is not
re-armed, so a loop that waits for the same timer again makes no extra call.

Only asyncio's own selector loop on Linux is changed (the ``Flock`` of a run
does it when it starts, so ``asyncio.run(main())`` programs get it too);
anything else (another platform, uvloop, a custom selector) is left as it is.
``FLOCK_ES_PRECISE_TIMERS=0`` turns it off.

Example::

    make_timers_precise(asyncio.get_running_loop())
    await asyncio.sleep(0.05)   # resumes 50 ms later, not up to 51
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import selectors
import sys
import time
from typing import Any

from flock_es.loop_wait import BeforeSelect, run_before_select

__all__ = ["SPIN", "PreciseEpollSelector", "make_timers_precise", "timers_are_precise"]

_CLOCK_MONOTONIC = 1
_TFD_CLOEXEC = 0o2000000
_TFD_NONBLOCK = 0o4000
_TFD_TIMER_ABSTIME = 1
# The timer fires this long (seconds) before the deadline, and the loop then looks
# for I/O without waiting until it: waking a thread from an idle CPU takes about
# 0.1 ms on a virtual machine, which every wait paid on top of its deadline.
SPIN = 0.00025


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        create, settime = libc.timerfd_create, libc.timerfd_settime
    except (OSError, AttributeError):
        return None
    create.argtypes = (ctypes.c_int, ctypes.c_int)
    create.restype = ctypes.c_int
    settime.argtypes = (
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(_Itimerspec),
        ctypes.POINTER(_Itimerspec),
    )
    settime.restype = ctypes.c_int
    return libc


_LIBC = _libc()


class PreciseEpollSelector(selectors.EpollSelector):
    """An epoll selector that also wakes at the exact deadline of the wait.

    Made from a live ``EpollSelector`` by ``make_timers_precise`` (its class is
    switched, its registrations kept); ``attach`` adds the timer.
    """

    _tfd: int
    _armed: float
    _spec: _Itimerspec
    # Calls before the next select (``flock_es.loop_wait``: the log writer's commits).
    before_select: list[BeforeSelect]

    def attach(self) -> bool:
        """Create and register the timer; False (and nothing changed) if it cannot be."""
        if _LIBC is None:
            return False
        fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_CLOEXEC | _TFD_NONBLOCK)
        if fd < 0:
            return False
        self._tfd = fd
        self._armed = 0.0
        self._spec = _Itimerspec()
        self.before_select = []
        super().register(fd, selectors.EVENT_READ, None)
        return True

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if self.before_select:
            timeout = run_before_select(self.before_select, timeout)
        if timeout is not None and timeout > 0:
            # Clamp as asyncio does (a day at most); the loop's clock is CLOCK_MONOTONIC.
            deadline = time.monotonic() + min(timeout, 86400.0)
            if timeout <= SPIN:
                return self._spin(deadline)
            self._arm(deadline - SPIN)
        return self._ready(super().select(timeout))

    def _spin(self, deadline: float) -> list[tuple[selectors.SelectorKey, int]]:
        """Look for I/O without waiting until ``deadline`` (or until there is some)."""
        poll, clock = super().select, time.monotonic
        while True:
            ready = self._ready(poll(0))
            if ready or clock() >= deadline:
                return ready

    def _ready(
        self, ready: list[tuple[selectors.SelectorKey, int]]
    ) -> list[tuple[selectors.SelectorKey, int]]:
        """``ready`` without the timer (whose readiness is consumed here)."""
        tfd = self._tfd
        for i, (key, _) in enumerate(ready):
            if key.fd == tfd:
                self._armed = 0.0
                with contextlib.suppress(BlockingIOError):  # re-armed since it fired
                    os.read(tfd, 8)
                del ready[i]
                break
        return ready

    def _arm(self, deadline: float) -> None:
        armed = self._armed
        # The same deadline again (within 20 µs): it is armed already.
        if armed and abs(armed - deadline) < 2e-5:
            return
        value = self._spec.it_value
        secs = int(deadline)
        value.tv_sec = secs
        value.tv_nsec = int((deadline - secs) * 1e9)
        if _LIBC.timerfd_settime(self._tfd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None):
            self._armed = 0.0
            return
        self._armed = deadline

    def close(self) -> None:
        tfd = getattr(self, "_tfd", -1)
        super().close()
        if tfd >= 0:
            os.close(tfd)
            self._tfd = -1


def make_timers_precise(loop: asyncio.AbstractEventLoop) -> bool:
    """Make ``loop``'s timers wake on time (see the module docstring); whether it did."""
    if os.environ.get("FLOCK_ES_PRECISE_TIMERS", "1") == "0":
        return False
    selector = getattr(loop, "_selector", None)
    if type(selector) is PreciseEpollSelector:
        return True
    # Only asyncio's own selector loop with its default epoll selector.
    if type(selector) is not selectors.EpollSelector or not isinstance(
        loop, asyncio.SelectorEventLoop
    ):
        return False
    selector.__class__ = PreciseEpollSelector  # the same object: its registrations stay
    if not PreciseEpollSelector.attach(selector):  # type: ignore[arg-type]
        selector.__class__ = selectors.EpollSelector
        return False
    return True


def timers_are_precise(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``make_timers_precise`` made ``loop``'s timers wake on time."""
    return type(getattr(loop, "_selector", None)) is PreciseEpollSelector
