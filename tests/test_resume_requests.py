"""Resume reads the recorded requests of the calls it may serve by their seqs (the
fold kept them), not by a second pass over the whole log: the same requests, from
a full or a compact fold, with or without ``--retry-failed``."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from flock_es.domain.events import Event, EventKind
from flock_es.projection import fold
from flock_es.runtime.preflight import pending_requests, recorded_requests
from tests.property_budget import examples
from tests.test_compact_state import well_formed
from tests.test_fold_properties import event_lists


class _Log:
    """The part of a reader ``pending_requests`` uses, over a list; counts reads."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.read = 0

    def iter_events(self, run_id: str, after: int = 0, until: int | None = None) -> Iterator[Event]:
        for e in self.events:
            seq = e.seq or 0
            if seq > after and (until is None or seq <= until):
                self.read += 1
                yield e


def _distinct_requests(evs: list[Event]) -> list[Event]:
    """Each model.called with a request of its own, so the first one kept shows."""
    return [
        Event(e.run_id, e.kind, {**e.body, "request": {"seq": e.seq}}, e.ts, e.seq)
        if e.kind is EventKind.MODEL_CALLED
        else e
        for e in evs
    ]


@settings(max_examples=examples(200), deadline=None)
@given(event_lists(), st.booleans(), st.booleans())
def test_requests_read_by_seq_are_those_of_a_pass_over_the_log(
    evs: list[Event], compact: bool, retry_failed: bool
) -> None:
    evs = _distinct_requests(well_formed(evs))
    state = fold(evs, compact=compact)
    log = _Log(evs)
    got = pending_requests(log, state, retry_failed)  # type: ignore[arg-type]
    assert got == recorded_requests(evs, state, retry_failed)
    calls = sum(1 for e in evs if e.kind is EventKind.MODEL_CALLED)
    assert log.read <= calls  # only model.called events were read
