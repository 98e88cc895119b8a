"""Python-function agents: no model, plain code, recorded like any other agent.

    flock-es run examples/function_agent.py

``tokenise`` fans out one Sentence per sentence of a Document; ``count`` runs
on every Sentence in parallel; ``tally`` batches the counts into one Report.
"""

import asyncio
import re

from pydantic import BaseModel

from flock_es import AgentContext, BatchSpec, Flock, flock_type


@flock_type
class Document(BaseModel):
    title: str
    text: str


@flock_type
class Sentence(BaseModel):
    index: int
    text: str


@flock_type
class WordCount(BaseModel):
    index: int
    words: int


@flock_type
class Report(BaseModel):
    title: str
    sentences: int
    words: int


flock = Flock()


def tokenise(doc: Document) -> list[Sentence]:
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+", doc.text) if p.strip()]
    return [Sentence(index=i, text=p) for i, p in enumerate(parts)]


async def count(sentence: Sentence, ctx: AgentContext) -> WordCount:
    await asyncio.sleep(0.01)  # stands in for I/O; runs concurrently for every sentence
    return WordCount(index=sentence.index, words=len(sentence.text.split()))


def tally(counts: list[WordCount]) -> Report:
    return Report(title="report", sentences=len(counts), words=sum(c.words for c in counts))


flock.agent("tokenise").consumes(Document).publishes(Sentence).with_function(tokenise)
flock.agent("count").consumes(Sentence).publishes(WordCount).with_function(count)
flock.agent("tally").consumes(WordCount, batch=BatchSpec(timeout=0.5)).publishes(
    Report
).with_function(tally)


async def main():
    await flock.publish(
        Document(
            title="On logs",
            text="A log is a list of facts. Facts never change. Everything else is derived. "
            "That is why a crashed run can resume.",
        )
    )
    await flock.run_until_idle()
    for r in await flock.store.get_by_type(Report):
        print(f"{r.sentences} sentences, {r.words} words")


if __name__ == "__main__":
    asyncio.run(main())
