"""An agent's durations: the quantile of a sorted array and a list of new ones, as of
all of them sorted together (hypothesis), with merges along the way."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flock_es.tui import durations
from flock_es.tui.durations import Durations, kth

seconds = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)


@given(st.lists(seconds), st.lists(seconds), st.data())
def test_kth_is_the_kth_of_both_sorted_together(
    a: list[float], b: list[float], data: st.DataObject
) -> None:
    both = sorted(a + b)
    if both:
        k = data.draw(st.integers(0, len(both) - 1))
        assert kth(sorted(a), sorted(b), k) == both[k]


@given(st.lists(seconds, max_size=60), st.sampled_from([0.0, 0.05, 0.5, 0.95, 1.0]))
def test_a_quantile_is_the_nearest_rank_of_all_so_far(xs: list[float], q: float) -> None:
    saved, durations.MERGE_AT = durations.MERGE_AT, 3  # merges from the third on, not 4,096th
    try:
        d = Durations()
        for n, x in enumerate(xs, 1):
            d.add(x)
            so_far = sorted(xs[:n])
            assert d.quantile(q) == so_far[min(n - 1, int(q * (n - 1) + 0.5))]
    finally:
        durations.MERGE_AT = saved
    assert len(d) == len(xs)
    if not xs:
        assert d.quantile(q) is None


def test_new_durations_are_merged_once_there_are_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(durations, "MERGE_AT", 4)
    d = Durations()
    for x in (5.0, 1.0, 4.0, 2.0, 3.0):
        d.add(x)
    assert list(d.sorted) == [1.0, 2.0, 4.0, 5.0] and d.new == [3.0]
    assert [d.quantile(q) for q in (0.0, 0.5, 1.0)] == [1.0, 3.0, 5.0]
    for x in (0.5, 9.0, 6.0):  # merged once as many as the array holds
        d.add(x)
    assert len(d.sorted) == 8 and not d.new and d.quantile(1.0) == 9.0
