"""The program behind bench/bench_tui_memory.py: a document pipeline.

    BENCH_DOCS=4000 BENCH_KB=8 flock-es run bench/_docs_program.py --db docs.db

$BENCH_DOCS documents of $BENCH_KB KB, published at once (a generator: the program
holds none of them); 4 ``def`` agents read each one and publish a note of the same
size. Offline, no model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from pydantic import BaseModel

from flock_es import Flock, flock_type

READERS = 4


@flock_type
class Document(BaseModel):
    n: int
    text: str


@flock_type
class Note(BaseModel):
    n: int
    reader: int
    text: str


flock = Flock()


def reader(i: int) -> Callable[[Document], Note]:
    def read(d: Document) -> Note:
        return Note(n=d.n, reader=i, text=d.text[::-1])

    return read


for i in range(READERS):
    flock.agent(f"reader{i}").consumes(Document).publishes(Note).with_function(reader(i))


def documents(n: int, kb: int) -> Iterator[Document]:
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit "
    body = words * (kb * 1024 // len(words) + 1)
    for k in range(n):
        yield Document(n=k, text=f"document {k}: {body}"[: kb * 1024])


async def main() -> None:
    n, kb = int(os.environ.get("BENCH_DOCS", "4000")), int(os.environ.get("BENCH_KB", "8"))
    await flock.publish_many(documents(n, kb))
    await flock.run_until_idle()
