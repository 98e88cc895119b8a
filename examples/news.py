"""The news agency from Flock's "Parallel Processing at Scale" tutorial, on flock-es.

Eight analysts consume the same BreakingNews in parallel; an editor batches
their eight NewsAnalysis into one NewsDigest.

    flock-es run examples/news.py                       # offline model, no key needed
    flock-es run examples/news.py -m "offline?latency=2" # watch it in `flock-es tui`
    flock-es run examples/news.py -m openai/gpt-4.1      # a real model (OPENAI_API_KEY)
    python examples/news.py                             # the same, without the CLI

Apart from the imports, the code is the tutorial's. The one change: the
tutorial writes ``Flock("openai/gpt-4.1")``; here the model comes from
``--model`` or ``$FLOCK_ES_MODEL`` and is ``offline`` by default.
"""

import asyncio
import time
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, Field

from flock_es import BatchSpec, Flock, flock_type


@flock_type
class BreakingNews(BaseModel):
    """SEED INPUT: raw breaking news that triggers all analysts."""

    headline: str
    raw_story: str = Field(min_length=100)
    source: str
    timestamp: str


@flock_type
class NewsAnalysis(BaseModel):
    """OUTPUT: specialised analysis from each analyst."""

    category: Literal[
        "world",
        "technology",
        "business",
        "sports",
        "entertainment",
        "science",
        "politics",
        "health",
    ]
    analyst_name: str
    key_takeaways: list[str] = Field(min_length=3, max_length=5)
    impact_assessment: str
    related_context: str
    audience_recommendation: str


@flock_type
class NewsDigest(BaseModel):
    """AGGREGATION: final digest combining all analyses."""

    headline: str
    comprehensive_summary: str
    perspectives_included: list[str]
    cross_category_insights: list[str]
    total_analysts: int


flock = Flock()

categories = [
    ("world", "Analyzes global events, international relations, geopolitics"),
    ("technology", "Covers tech trends, startups, AI, and innovation"),
    ("business", "Focuses on markets, economics, corporate news"),
    ("sports", "Covers athletics, competitions, player news"),
    ("entertainment", "Analyzes movies, music, celebrity culture"),
    ("science", "Covers research, discoveries, scientific breakthroughs"),
    ("politics", "Analyzes political developments, elections, policy"),
    ("health", "Focuses on medical news, public health, wellness"),
]

# Create 8 analysts automatically
for category, description in categories:
    flock.agent(f"{category}_analyst").description(description).consumes(BreakingNews).publishes(
        NewsAnalysis
    )

# The editor waits for all eight analyses (or 30 s) before writing the digest.
editor = (
    flock.agent("editor")
    .description("Synthesizes all analyst perspectives into comprehensive digest")
    .consumes(NewsAnalysis, batch=BatchSpec(size=8, timeout=timedelta(seconds=30)))
    .publishes(NewsDigest)
)


async def main():
    print("📰 News Agency - Parallel Processing Demo\n")

    news = BreakingNews(
        headline="Major AI Breakthrough Announced at Tech Summit",
        raw_story="""
        Scientists at the Global Technology Summit announced a major breakthrough
        in artificial intelligence safety and alignment. The new technique, called
        'Constitutional AI', enables AI systems to better understand and follow
        human values and ethical guidelines...
        """,
        source="Global Tech News Wire",
        timestamp="2025-10-07T12:00:00Z",
    )

    start_time = time.time()

    # Publish the news: this triggers ALL 8 analysts simultaneously.
    await flock.publish(news)

    # Wait for all processing to complete (the editor's batch included).
    await flock.run_until_idle()

    total_duration = time.time() - start_time

    analyses = await flock.store.get_artifacts_by_type("NewsAnalysis")
    digests = await flock.store.get_by_type(NewsDigest)
    for digest in digests:
        print(f"🗞  {digest.headline}")
        print(f"   {digest.comprehensive_summary}")
        print(f"   perspectives: {', '.join(digest.perspectives_included)}")

    print("\n⚡ PERFORMANCE METRICS")
    print(f"   Total Analysts: {len(analyses)}")
    print(f"   Execution Time: {total_duration:.2f}s")
    print(f"   Speedup: ~{len(analyses)}x (thanks to parallel execution!)")


if __name__ == "__main__":
    asyncio.run(main())
