"""Where the milliseconds of workload (a) go: one run's timeline.

    python bench/timeline_a.py fn       # async def agents sleeping 0.05 s
    python bench/timeline_a.py model    # model agents on offline?latency=0.05

Stamps (perf_counter, ms from publish) at: publish, decide, commit queued,
commit start/end on the writer's thread (with synchronous= mode), settle,
act, task start, agent body / model call start and end, record of
model.called, completion, run idle. Instrumentation adds a few µs per stamp.
Prints the second of two runs in one process (the first warms imports).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from bench._news_seed import Analysis, Digest, News, wire_news
from flock_es import Flock

LATENCY = 0.05
STAMPS: list[tuple[float, str, str]] = []
T0 = [0.0]


def stamp(label: str) -> None:
    th = threading.current_thread().name
    STAMPS.append((time.perf_counter(), "W" if "writer" in th else "L", label))


def wrap(owner: Any, attr: str, label: Callable[..., str], after: bool = True) -> None:
    fn = getattr(owner, attr)
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def aw(*a: Any, **k: Any) -> Any:
            stamp(label(*a, **k) + " >")
            try:
                return await fn(*a, **k)
            finally:
                if after:
                    stamp(label(*a, **k) + " <")

        setattr(owner, attr, aw)
    else:

        @functools.wraps(fn)
        def sw(*a: Any, **k: Any) -> Any:
            stamp(label(*a, **k) + " >")
            try:
                return fn(*a, **k)
            finally:
                if after:
                    stamp(label(*a, **k) + " <")

        setattr(owner, attr, sw)


def kinds(events: list[Any]) -> str:
    out: dict[str, int] = {}
    for e in events:
        out[e.kind.value] = out.get(e.kind.value, 0) + 1
    return ",".join(f"{k}x{n}" if n > 1 else k for k, n in out.items())


def instrument() -> None:
    from flock_es.log import group_commit, thread_drain, writer
    from flock_es.models import base, offline, prompt
    from flock_es.runtime import engine, executor, kernel, model_agent, model_calls, work

    wrap(engine.Engine, "publish_external", lambda *a, **k: "publish_external")
    wrap(kernel.Kernel, "decide", lambda s, evs, now: f"decide {kinds(evs)}")
    wrap(group_commit.UnitQueue, "submit", lambda s, evs: f"submit {kinds(evs)}", after=False)
    wrap(group_commit.UnitQueue, "enqueue", lambda s, evs: f"enqueue {kinds(evs)}", after=False)
    wrap(
        writer.LogWriter,
        "_transaction",
        lambda s, c, evs, wait: f"txn sync={s.synced(evs)} n={len(evs)} {kinds(evs)}",
    )
    if "--txn" in sys.argv:
        wrap(writer, "write_events", lambda c, evs, last: f"write_events n={len(evs)}")
        wrap(writer.LogWriter, "_next_seq", lambda s, c: "next_seq")
    for module in (group_commit, thread_drain):  # each calls the settle it imported
        wrap(module, "settle", lambda units, exc: f"settle {len(units)} units", after=False)
    wrap(kernel.Kernel, "committed", lambda s, evs: f"committed {kinds(evs)}", after=False)
    wrap(engine.Engine, "act", lambda s, evs: "act")
    wrap(executor.Executor, "start", lambda s, t, a, u=None: f"task.start {a.name}", after=False)
    wrap(executor.Executor, "completion", lambda s, r, *a, **k: f"completion {r.agent.name}")
    wrap(executor.Executor, "execute", lambda s, t, *a: f"execute {t.agent}")
    from flock_es.runtime import inline_runs

    wrap(inline_runs.InlineRuns, "execute", lambda s, ts, sp: f"inline n={len(ts)}")
    wrap(model_agent, "output_schema", lambda *a, **k: "output_schema")
    wrap(model_agent, "build_messages", lambda *a, **k: "build_messages")
    wrap(model_agent, "parse_output", lambda *a, **k: "parse_output")
    wrap(executor, "run_model_agent", lambda c, r, i: f"model_agent {r.agent.name}")
    wrap(offline.OfflineModel, "complete", lambda s, r: f"offline.complete {r.agent}")
    wrap(offline.OfflineModel, "answer", lambda s, r: f"offline.answer {r.agent}")
    wrap(model_calls.ModelCalls, "_answer_event", lambda s, r, *a: f"record {r.agent.name}")
    wrap(work.Work, "until_idle", lambda *a, **k: "until_idle")
    wrap(base.ModelRequest, "redacted", lambda s: f"redacted {s.agent}")
    wrap(model_calls, "call_with_retries", lambda *a, **k: "call_with_retries", after=False)
    if hasattr(offline, "sleep_precisely"):
        from flock_es.models import waker

        wrap(waker, "_wake", lambda f: "waker wake", after=False)
    _ = prompt


async def news_fn(db: Path) -> float:
    flock = Flock(db=db)

    async def analyse(news: News) -> Analysis:
        stamp("body analyst >")
        await asyncio.sleep(LATENCY)
        stamp("body analyst <")
        return Analysis(category="c")

    async def edit(batch: list[Analysis]) -> Digest:
        stamp("body editor >")
        await asyncio.sleep(LATENCY)
        stamp("body editor <")
        return Digest(headline="h", total=len(batch))

    wire_news(flock, analyse, edit)
    await flock.start()
    STAMPS.clear()
    t0 = time.perf_counter()
    T0[0] = t0
    await flock.publish(News(headline="h"))
    stamp("publish returned")
    await flock.run_until_idle()
    stamp("run idle")
    wall = time.perf_counter() - t0
    await flock.close()
    return wall - 2 * LATENCY


async def news_model(db: Path) -> float:
    import contextlib
    import io

    from flock_es.runtime.program import load_program

    prog = load_program(Path(__file__).resolve().parent.parent / "examples" / "news.py")
    flock = prog.flock
    flock.db_path = db
    flock.model = "offline?latency=0.05"
    news = prog.module.BreakingNews(headline="h", raw_story="x " * 60, source="s", timestamp="t")
    await flock.start()
    STAMPS.clear()
    t0 = time.perf_counter()
    T0[0] = t0
    with contextlib.redirect_stdout(io.StringIO()):
        await flock.publish(news)
        stamp("publish returned")
        await flock.run_until_idle()
    stamp("run idle")
    wall = time.perf_counter() - t0
    await flock.close()
    return wall - 2 * LATENCY


def phases() -> str:
    """The run in five phases, ms: publish to the first agent's body, the analysts'
    latency over 50 ms (first start to last end), last analyst to editor, the
    editor's latency over 50 ms, editor to idle."""
    t0 = T0[0]
    model = any("offline.complete" in lab for _, _, lab in STAMPS)
    a_in, a_out = ("offline.complete", "offline.complete") if model else ("body analyst", "body")
    e_in = "offline.complete editor >" if model else "body editor >"
    e_out = "offline.complete editor <" if model else "body editor <"
    e_start = next(t for t, _, lab in STAMPS if e_in in lab)
    e_end = next(t for t, _, lab in STAMPS if e_out in lab)
    a_start = next(t for t, _, lab in STAMPS if a_in in lab and lab.endswith(">"))
    a_end = max(t for t, _, lab in STAMPS if a_out in lab and lab.endswith("<") and t < e_start)
    idle = next(t for t, _, lab in STAMPS if lab == "run idle")
    lat = LATENCY * 1e3
    return (
        f"start->1st agent {(a_start - t0) * 1e3:.2f} | analysts late "
        f"{(a_end - a_start) * 1e3 - lat:.2f} | ->editor {(e_start - a_end) * 1e3:.2f} | "
        f"editor late {(e_end - e_start) * 1e3 - lat:.2f} | ->idle {(idle - e_end) * 1e3:.2f}"
    )


def show(over: float, full: bool) -> None:
    t0 = T0[0]
    prev = t0
    print(f"over ideal: {over * 1000:.2f} ms   {phases()}")
    for t, th, label in STAMPS:
        dt = (t - prev) * 1000
        if full or dt > 0.05 or "sleep" in label:
            print(f"{(t - t0) * 1000:9.3f}  +{dt:7.3f}  {th}  {label}")
        prev = t


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "fn"
    full = "--full" in sys.argv
    instrument()
    fn = news_fn if which == "fn" else news_model
    runs = int(next((a.split("=")[1] for a in sys.argv if a.startswith("--runs=")), "2"))
    with tempfile.TemporaryDirectory() as d:
        for r in range(runs):
            over = asyncio.run(fn(Path(d) / f"t{r}.db"))
            if "--phases" in sys.argv and r > 0:
                print(f"over ideal: {over * 1000:.2f} ms   {phases()}")
    if "--phases" not in sys.argv:
        show(over, full)


if __name__ == "__main__":
    main()
