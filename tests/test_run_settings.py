"""The interpreter settings a run drives agents with (``runtime/gc_policy.py``):
collector thresholds and the GIL switch interval, each changed only from Python's
default, and restored when the last active run stops."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from flock_es.runtime.gc_policy import (
    RUN_SWITCH_INTERVAL,
    RUN_THRESHOLDS,
    fewer_collections,
)


def _micros() -> int:
    return round(sys.getswitchinterval() * 1e6)


@pytest.fixture
def python_defaults() -> Iterator[None]:
    before = gc.get_threshold(), sys.getswitchinterval()
    gc.set_threshold(700, 10, 10)
    sys.setswitchinterval(0.005)
    yield
    gc.set_threshold(*before[0])
    sys.setswitchinterval(before[1])


def test_a_run_shortens_the_switch_interval_and_restores_it(python_defaults: None) -> None:
    with fewer_collections():
        with fewer_collections():  # nested runs: only the outermost restores
            assert _micros() == round(RUN_SWITCH_INTERVAL * 1e6)
            assert gc.get_threshold() == RUN_THRESHOLDS
        assert _micros() == round(RUN_SWITCH_INTERVAL * 1e6)
    assert _micros() == 5000
    assert gc.get_threshold() == (700, 10, 10)


def test_a_program_s_own_settings_are_left_alone(python_defaults: None) -> None:
    sys.setswitchinterval(0.01)
    gc.set_threshold(*RUN_THRESHOLDS)  # as `flock-es run` sets them for the whole process
    with fewer_collections():
        assert _micros() == 10_000
    assert _micros() == 10_000
    assert gc.get_threshold() == RUN_THRESHOLDS  # not reset to Python's defaults
