"""A document pipeline for tests/test_memory_documents.py: DOCS documents of KB kilobytes
each, published one after another; "clean" makes a cleaned copy of each (as large),
"measure" counts its words. The run's payloads add up to 2 x DOCS x KB kilobytes."""

import os

from pydantic import BaseModel

from flock_es import Flock, flock_type

DOCS = int(os.environ.get("DOCS", "60"))
KB = int(os.environ.get("KB", "500"))
WORDS = "lorem ipsum dolor sit amet "


@flock_type
class Document(BaseModel):
    n: int
    text: str


@flock_type
class CleanDocument(BaseModel):
    n: int
    text: str


@flock_type
class DocumentStats(BaseModel):
    n: int
    words: int


flock = Flock()


def clean(doc: Document) -> CleanDocument:
    return CleanDocument(n=doc.n, text=doc.text.upper())


def measure(doc: CleanDocument) -> DocumentStats:
    return DocumentStats(n=doc.n, words=doc.text.count(" "))


flock.agent("clean").consumes(Document).publishes(CleanDocument).with_function(clean)
flock.agent("measure").consumes(CleanDocument).publishes(DocumentStats).with_function(measure)


def document(n: int) -> Document:
    size = KB * 1000
    return Document(n=n, text=(f"document {n} " + WORDS * (size // len(WORDS) + 1))[:size])


async def main() -> None:
    for n in range(DOCS):  # one at a time: the program holds none of them
        await flock.publish(document(n))
    await flock.run_until_idle()
