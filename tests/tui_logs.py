"""Event logs for the TUI tests and benchmark, written through the real ``LogWriter``.

``write_news_log`` writes the news scenario (8 analysts in parallel, then the
editor) with fixed ids and timestamps, so SVG snapshots are byte-stable;
every body is validated against its kind's definition (``make_event``), so the fixture
cannot drift from what the runtime writes. ``write_large_log`` writes 100,000
events and 20,000 artifacts for the scale test and the benchmark.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, cast

from flock_es.domain.events import (
    AgentSpec,
    ArtifactPublished,
    BatchBuffered,
    Body,
    Event,
    EventKind,
    ModelCalled,
    RunFinished,
    RunStarted,
    RunStatus,
    ScheduleReason,
    SubscriptionSpec,
    TaskCompleted,
    TaskScheduled,
    TaskStarted,
    make_event,
    trusted_event,
)
from flock_es.log.writer import LogWriter

T0 = 1_735_732_800.0  # 2025-01-01 12:00:00 UTC
NEWS_RUN = "r-20250101-120000-news00"
CATEGORIES = (
    "world",
    "technology",
    "business",
    "sports",
    "entertainment",
    "science",
    "politics",
    "health",
)
LATENCY = 3.0


def _agents() -> list[AgentSpec]:
    specs = [
        AgentSpec(
            name=f"{c}_analyst",
            description=f"Analyses {c} news",
            publishes=["NewsAnalysis"],
            subscriptions=[SubscriptionSpec(index=0, types=["BreakingNews"])],
        )
        for c in CATEGORIES
    ]
    specs.append(
        AgentSpec(
            name="editor",
            description="Synthesizes all analyst perspectives",
            publishes=["NewsDigest"],
            subscriptions=[
                SubscriptionSpec(index=0, types=["NewsAnalysis"], batch_size=8, batch_timeout=30.0)
            ],
        )
    )
    return specs


def _request(agent: str, role: str, input_type: str) -> dict[str, object]:
    """A recorded model request as the runtime writes it: the prompt as chat messages."""
    schema = {"type": "object", "properties": {"headline": {"type": "string"}}}
    return {
        "model": "offline",
        "agent": agent,
        "description": role,
        "output_schema": schema,
        "messages": [
            {
                "role": "system",
                "content": f"You are the agent {agent!r} in a multi-agent system.\n"
                f"Your role: {role}\nAnswer with a single JSON object.",
            },
            {
                "role": "user",
                "content": f"Input artifacts:\n- {input_type}: "
                '{"headline": "Major AI Breakthrough Announced at Tech Summit"}',
            },
        ],
        "tools": [],
        "settings": {},
    }


def news_events(run_id: str = NEWS_RUN, t0: float = T0) -> list[Event]:
    """The news run: analysts start together, finish 0.1 s apart, then the editor."""
    out: list[Event] = []

    def add(kind: EventKind, body: Body, ts: float) -> None:
        out.append(make_event(run_id, kind, body, t0 + ts))

    add(
        EventKind.RUN_STARTED,
        RunStarted(program="/demo/news.py", model="offline?latency=3", agents=_agents()),
        0.0,
    )
    add(
        EventKind.ARTIFACT_PUBLISHED,
        ArtifactPublished(
            id="a-breaking-news-0001",
            type="BreakingNews",
            payload={
                "headline": "Major AI Breakthrough Announced at Tech Summit",
                "raw_story": "Scientists announced a breakthrough in AI safety. " * 3,
                "source": "Global Tech News Wire",
                "timestamp": "2025-01-01T12:00:00Z",
            },
        ),
        0.01,
    )
    tasks = [f"t-{c[:6]}-analyst-000" for c in CATEGORIES]
    for c, tid in zip(CATEGORIES, tasks, strict=True):
        add(
            EventKind.TASK_SCHEDULED,
            TaskScheduled(
                task_id=tid, agent=f"{c}_analyst", sub_index=0, inputs=["a-breaking-news-0001"]
            ),
            0.02,
        )
    for c, tid in zip(CATEGORIES, tasks, strict=True):
        add(EventKind.TASK_STARTED, TaskStarted(task_id=tid, agent=f"{c}_analyst"), 0.03)
    analyses = []
    for i, (c, tid) in enumerate(zip(CATEGORIES, tasks, strict=True)):
        ts = LATENCY + 0.1 * i
        aid = f"a-analysis-{c[:6]}-01"
        analyses.append(aid)
        agent = f"{c}_analyst"
        add(
            EventKind.MODEL_CALLED,
            ModelCalled(
                task_id=tid,
                agent=agent,
                call_index=0,
                model="offline",
                request=_request(agent, f"Analyses {c} news", "BreakingNews"),
                response=json.dumps({"category": c, "impact_assessment": f"High impact on {c}"}),
                tokens_in=400 + i,
                tokens_out=120 + i,
                cost=0.0,
                latency_ms=LATENCY * 1000,
            ),
            ts,
        )
        add(
            EventKind.ARTIFACT_PUBLISHED,
            ArtifactPublished(
                id=aid,
                type="NewsAnalysis",
                produced_by=agent,
                task_id=tid,
                payload={
                    "category": c,
                    "analyst_name": agent,
                    "key_takeaways": [f"{c} takeaway {k}" for k in range(3)],
                    "impact_assessment": f"High impact on {c}",
                    "related_context": "Constitutional AI",
                    "audience_recommendation": "general",
                },
            ),
            ts,
        )
        add(
            EventKind.TASK_COMPLETED,
            TaskCompleted(task_id=tid, agent=agent, outputs=[aid], duration_ms=LATENCY * 1000),
            ts,
        )
        if i < len(CATEGORIES) - 1:
            deadline = T0 + LATENCY + 30.0 if i == 0 else None
            add(
                EventKind.BATCH_BUFFERED,
                BatchBuffered(agent="editor", sub_index=0, artifact_id=aid, deadline=deadline),
                ts,
            )
    t_ed = LATENCY + 0.1 * (len(CATEGORIES) - 1)
    add(
        EventKind.TASK_SCHEDULED,
        TaskScheduled(
            task_id="t-editor-digest-000",
            agent="editor",
            sub_index=0,
            inputs=analyses,
            reason=ScheduleReason.BATCH_SIZE,
        ),
        t_ed,
    )
    add(
        EventKind.TASK_STARTED,
        TaskStarted(task_id="t-editor-digest-000", agent="editor"),
        t_ed + 0.01,
    )
    t_end = t_ed + LATENCY
    add(
        EventKind.MODEL_CALLED,
        ModelCalled(
            task_id="t-editor-digest-000",
            agent="editor",
            call_index=0,
            model="offline",
            request=_request("editor", "Synthesizes all analyst perspectives", "NewsAnalysis"),
            response="{}",
            tokens_in=1500,
            tokens_out=300,
            cost=0.0,
            latency_ms=LATENCY * 1000,
        ),
        t_end,
    )
    add(
        EventKind.ARTIFACT_PUBLISHED,
        ArtifactPublished(
            id="a-news-digest-000001",
            type="NewsDigest",
            produced_by="editor",
            task_id="t-editor-digest-000",
            payload={
                "headline": "AI safety breakthrough, seen from eight desks",
                "comprehensive_summary": "Eight analysts agree the technique matters.",
                "perspectives_included": list(CATEGORIES),
                "cross_category_insights": ["safety", "markets", "policy"],
                "total_analysts": 8,
            },
        ),
        t_end,
    )
    add(
        EventKind.TASK_COMPLETED,
        TaskCompleted(
            task_id="t-editor-digest-000",
            agent="editor",
            outputs=["a-news-digest-000001"],
            duration_ms=LATENCY * 1000,
        ),
        t_end,
    )
    add(EventKind.RUN_FINISHED, RunFinished(status=RunStatus.COMPLETED), t_end + 0.01)
    return out


async def write_events(path: Path, units: list[list[Event]]) -> None:
    writer = await LogWriter.open(path)
    try:
        for unit in units:
            await writer.append(unit)
    finally:
        await writer.close()


def write_news_log(
    path: Path, upto: int | None = None, run_id: str = NEWS_RUN, t0: float = T0
) -> list[Event]:
    """Write the news run (its first ``upto`` events) to ``path``; returns the events."""
    events = news_events(run_id, t0)[:upto]
    asyncio.run(write_events(path, [[e] for e in events]))
    return events


LARGE_AGENTS = 10


def large_events(units: int = 10_000, run_id: str = "r-20250101-130000-large0") -> list[Event]:
    """``units`` x 10 events and 2 artifacts: 100,000 events and 20,000 artifacts by default."""
    agents: list[AgentSpec] = [
        {
            "name": f"worker_{i}",
            "description": "",
            "kind": "model",
            "model": None,
            "publishes": ["Out"],
            "subscriptions": [
                {
                    "index": 0,
                    "types": ["Item"],
                    "where": [],
                    "from_agents": [],
                    "tags": [],
                    "batch_size": None,
                    "batch_timeout": None,
                }
            ],
            "max_concurrency": None,
        }
        for i in range(LARGE_AGENTS)
    ]
    t = T0 + 3600
    out = [
        trusted_event(
            run_id,
            EventKind.RUN_STARTED,
            RunStarted(program="/demo/large.py", model="offline", agents=agents),
            t,
        )
    ]
    out.extend(unit_events(run_id, range(units)))
    return out


LARGE_RUN = "r-20250101-130000-large0"


def unit_events(run_id: str, numbers: range) -> list[Event]:
    """Ten events per unit: an input, its task with five model calls, and the output."""
    out = []
    for n in numbers:
        t = T0 + 3600 + 0.001 * (n + 1)
        agent = f"worker_{n % LARGE_AGENTS}"
        item, tid, res = f"a-item-{n:08d}", f"t-task-{n:08d}", f"a-out-{n:08d}"

        def ev(kind: EventKind, body: dict[str, Any], t: float = t) -> None:
            out.append(trusted_event(run_id, kind, cast(Body, body), t))

        ev(
            EventKind.ARTIFACT_PUBLISHED,
            {
                "id": item,
                "type": "Item",
                "payload": {"n": n, "text": f"item number {n}"},
                "produced_by": "external",
            },
        )
        ev(
            EventKind.TASK_SCHEDULED,
            {"task_id": tid, "agent": agent, "sub_index": 0, "inputs": [item], "reason": "match"},
        )
        ev(EventKind.TASK_STARTED, {"task_id": tid, "agent": agent, "attempt": 1})
        for k in range(5):
            ev(
                EventKind.MODEL_CALLED,
                {
                    "task_id": tid,
                    "agent": agent,
                    "call_index": k,
                    "model": "offline",
                    "request": {},
                    "response": "{}",
                    "tokens_in": 10,
                    "tokens_out": 5,
                    "cost": 0.0,
                    "latency_ms": 1.0,
                },
            )
        ev(
            EventKind.ARTIFACT_PUBLISHED,
            {"id": res, "type": "Out", "payload": {"n": n}, "produced_by": agent, "task_id": tid},
        )
        ev(
            EventKind.TASK_COMPLETED,
            {"task_id": tid, "agent": agent, "outputs": [res], "attempt": 1, "duration_ms": 1.0},
        )
    return out


def write_large_log(path: Path, units: int = 10_000) -> int:
    """Write the large run to ``path`` in chunks of 2,000 events; returns the event count."""
    events = large_events(units)
    chunks = [events[i : i + 2000] for i in range(0, len(events), 2000)]
    asyncio.run(write_events(path, chunks))
    return len(events)
