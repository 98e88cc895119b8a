"""Property: what AND/count gates and joins fire does not depend on arrival order.

Which A pairs with which B follows arrival (first come, first served), so the
exact pairing is order-dependent by nature; what must not depend on the order
is everything else: how many firings, their shape, that no artifact fires
twice, and that every artifact is either fired or still waiting (none dropped).
The test drives the real decide/fold pair directly, which keeps a few hundred
examples fast.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from flock_es.domain.events import ArtifactPublished, EventKind, trusted_event
from flock_es.domain.subscriptions import JoinSpec, Subscription
from flock_es.projection.decide import SubscriptionIndex, decide_artifact
from flock_es.projection.fold import apply
from flock_es.projection.state import RunState
from tests.property_budget import examples


class PA(BaseModel):
    key: int


class PB(BaseModel):
    key: int


SHAPES = {"and": (PA, PB), "count": (PA, PA, PB), "count2": (PA, PB, PB, PA)}


def run(
    shape: tuple[type[BaseModel], ...], arrivals: list[tuple[str, int]], join: bool
) -> tuple[list[list[str]], list[str]]:
    sub = Subscription.build(
        "g",
        0,
        shape,
        None,
        None,
        None,
        None,
        join=JoinSpec(by=lambda o: o.key) if join else None,
    )
    index = SubscriptionIndex.build([sub])
    state = RunState(run_id="r-prop")
    firings: list[list[str]] = []
    for i, (t, key) in enumerate(arrivals):
        aid = f"{t}{i}"
        body: ArtifactPublished = {
            "id": aid,
            "type": t,
            "payload": {"key": key},
            "produced_by": "external",
        }
        apply(state, trusted_event("r-prop", EventKind.ARTIFACT_PUBLISHED, body, float(i)))
        obj = (PA if t == "PA" else PB)(key=key)
        for e in decide_artifact(state, index, state.artifacts[aid], obj, float(i)):
            apply(state, e)
            if e.kind is EventKind.TASK_SCHEDULED:
                firings.append(e.body["inputs"])
    waiting = [m for _, g in state.waiting_gates() for m in g.members]
    return firings, waiting


def summary(
    firings: list[list[str]], waiting: list[str], arrivals: list[tuple[str, int]]
) -> tuple[Counter[tuple[tuple[tuple[str, int], ...], int]], Counter[tuple[str, int]]]:
    key_of = {f"{t}{i}": k for i, (t, k) in enumerate(arrivals)}
    shapes = Counter(
        (tuple(sorted(Counter(a[:2] for a in f).items())), key_of[f[0]]) for f in firings
    )
    left = Counter((a[:2], key_of[a]) for a in waiting)
    return shapes, left


@settings(max_examples=examples(150), deadline=None)
@given(
    shape=st.sampled_from(sorted(SHAPES)),
    join=st.booleans(),
    items=st.lists(st.tuples(st.sampled_from(["PA", "PB"]), st.integers(0, 2)), max_size=14),
    data=st.data(),
)
def test_firings_do_not_depend_on_arrival_order(
    shape: str, join: bool, items: list[tuple[str, int]], data: st.DataObject
) -> None:
    types = SHAPES[shape]
    if not join:
        items = [(t, 0) for t, _ in items]
    shuffled = data.draw(st.permutations(items))
    f1, w1 = run(types, items, join)
    f2, w2 = run(types, shuffled, join)
    for firings, waiting, arrivals in ((f1, w1, items), (f2, w2, shuffled)):
        fired = [a for f in firings for a in f]
        assert len(fired) == len(set(fired)), "an artifact fired twice"
        assert sorted(fired + waiting) == sorted(f"{t}{i}" for i, (t, _) in enumerate(arrivals))
        need = Counter(t.__name__ for t in types)
        for f in firings:
            assert Counter(a[:2] for a in f) == need
    assert summary(f1, w1, items) == summary(f2, w2, shuffled)
    need = Counter(t.__name__ for t in types)
    key_of = {f"{t}{i}": k for i, (t, k) in enumerate(items)}
    per_key = Counter(key_of[f[0]] for f in f1)
    for key in {k for _, k in items}:
        have = Counter(t for t, k in items if k == key)
        assert per_key[key] == min(have[t] // n for t, n in need.items())
