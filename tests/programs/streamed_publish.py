"""One streamed publish_many (tests/test_streamed_publish.py): STREAM_N items, one
function agent. With $STREAM_MARK set, serialising item STREAM_AT touches that file
and hangs: the publish's transaction is open, some of its chunks written."""

import os
import time
from pathlib import Path

from pydantic import BaseModel, field_serializer

from flock_es import Flock, flock_type

N = int(os.environ.get("STREAM_N", "5000"))
AT = int(os.environ.get("STREAM_AT", "3500"))


@flock_type
class SItem(BaseModel):
    n: int

    @field_serializer("n")
    def _n(self, n: int) -> int:
        mark = os.environ.get("STREAM_MARK")
        if mark and n == AT:
            Path(mark).touch()
            time.sleep(60)  # SIGKILLed meanwhile
        return n


@flock_type
class SDone(BaseModel):
    n: int


flock = Flock()
flock.agent("a").consumes(SItem).publishes(SDone).with_function(lambda x: SDone(n=x.n))


async def main() -> None:
    await flock.publish_many([SItem(n=i) for i in range(N)])
