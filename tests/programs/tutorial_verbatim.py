# The tutorial's code as published, with only its imports changed (flock. -> flock_es.).
# It asks for "openai/gpt-4.1"; the test runs it with --model offline.
from typing import Literal
from pydantic import BaseModel, Field
from flock_es.orchestrator import Flock
from flock_es.registry import flock_type
from flock_es.subscription import BatchSpec
from datetime import timedelta


@flock_type
class BreakingNews(BaseModel):
    """
    SEED INPUT: Raw breaking news that triggers all analysts
    """
    headline: str
    raw_story: str = Field(min_length=100)
    source: str
    timestamp: str


@flock_type
class NewsAnalysis(BaseModel):
    """OUTPUT: Specialized analysis from each analyst"""
    category: Literal[
        "world", "technology", "business", "sports",
        "entertainment", "science", "politics", "health",
    ]
    analyst_name: str
    key_takeaways: list[str] = Field(min_length=3, max_length=5)
    impact_assessment: str
    related_context: str
    audience_recommendation: str


@flock_type
class NewsDigest(BaseModel):
    """AGGREGATION: Final digest combining all analyses"""
    headline: str
    comprehensive_summary: str
    perspectives_included: list[str]
    cross_category_insights: list[str]
    total_analysts: int


flock = Flock("openai/gpt-4.1")

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
    flock.agent(f"{category}_analyst") \
        .description(description) \
        .consumes(BreakingNews) \
        .publishes(NewsAnalysis)

# Agent 9: The Editor (Aggregates all analyses)
# Waits for ALL analyses to complete before publishing digest
editor = (
    flock.agent("editor")
    .description("Synthesizes all analyst perspectives into comprehensive digest")
    .consumes(NewsAnalysis)  # Will collect all 8 analyses
    .publishes(NewsDigest)
)

import time

async def main():
    print("📰 News Agency - Parallel Processing Demo\n")

    # 📰 Breaking news arrives!
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

    # Track execution time
    start_time = time.time()

    # 📤 Publish the news (this triggers ALL 8 analysts simultaneously!)
    await flock.publish(news)

    # ⏳ Wait for all processing to complete
    await flock.run_until_idle()

    end_time = time.time()
    total_duration = end_time - start_time

    # 📊 Retrieve all analyses
    analyses = await flock.store.get_artifacts_by_type("NewsAnalysis")

    print(f"\n⚡ PERFORMANCE METRICS")
    print(f"   Total Analysts: {len(analyses)}")
    print(f"   Execution Time: {total_duration:.2f}s")
    print(f"   Speedup: ~{len(analyses)}x (thanks to parallel execution!)")
