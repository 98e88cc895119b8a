"""Faults of a PostgreSQL server for the CLI's tests: connections ended (a failover),
a server out of reach behind a TCP proxy, and what a run left in the database.

Example::

    with proxied(pg_url) as (url, proxy):
        ...            # the CLI on ``url``
        proxy.down()   # the server goes away
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from flock_es.log.backends import open_reader
from tests.conftest import run_cli, start_cli
from tests.pg import pg_admin_url

__all__ = [
    "AGENTS",
    "Proxy",
    "artifacts",
    "cut_connections",
    "cut_mid_run",
    "done_tasks",
    "latest_run",
    "proxied",
    "wait_done",
]

AGENTS = """
import asyncio
from pydantic import BaseModel
from flock_es import Flock, flock_type

@flock_type
class Item(BaseModel):
    n: int

@flock_type
class Out(BaseModel):
    n: int

flock = Flock()

async def work(x: Item) -> Out:
    await asyncio.sleep(0.3)
    return Out(n=x.n)

for i in range(4):
    flock.agent(f"w{i}").consumes(Item).publishes(Out).with_function(work)

"""
"""The text of a program for the CLI's tests: four agents of 0.3 s on each ``Item``,
each publishing an ``Out``; its ``main()`` is the test's."""


def done_tasks(db: str) -> int:
    """The tasks done in the latest run of ``db`` (0 before it has one)."""
    out = run_cli(["runs", "--db", db, "--json"])
    runs = json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else []
    return int(runs[-1]["tasks"]["done"]) if runs else 0


def wait_done(db: str, tasks: int) -> None:
    """Until the latest run of ``db`` has done ``tasks`` tasks (or a minute passed)."""
    deadline = time.monotonic() + 60
    while done_tasks(db) < tasks and time.monotonic() < deadline:
        time.sleep(0.2)


def artifacts(db: str | Path, run: str) -> dict[str, int]:
    """How many artifacts of each type ``run`` has in ``db``."""
    with open_reader(db if isinstance(db, str) else Path(db)) as r:
        rows = r.query(
            "SELECT type, count(*) FROM artifacts WHERE run_id = ? GROUP BY type", (run,)
        )
    return {str(t): int(str(n)) for t, n in rows}


def latest_run(db: str | Path) -> str:
    """The id of the latest run in ``db``."""
    out = run_cli(["runs", "--db", db, "--json"])
    assert out.returncode == 0, out.stderr
    return str(json.loads(out.stdout)[-1]["run_id"])


def cut_connections(url: str) -> None:
    """End every server connection to ``url``'s database, as a failover would."""
    import psycopg

    with psycopg.connect(pg_admin_url(), autocommit=True) as con:
        con.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (url.rsplit("/", 1)[1],),
        )


class Proxy:
    """A TCP forwarder to the test server on a port of its own: ``down()`` is the server
    going away (its connections drop, new ones are refused), not just ending sessions."""

    def __init__(self, host: str, port: int, listen: int = 0) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", listen))
        self.port = int(self.listener.getsockname()[1])
        self.socks: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self.lock:  # one accepted as down() ran is not left working behind it
                if self.closed:
                    client.close()
                    server.close()
                    return
                self.socks += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def down(self) -> None:
        with self.lock:
            self.closed = True
        self.listener.close()
        for s in self.socks:
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@contextmanager
def proxied(url: str) -> Iterator[tuple[str, Proxy]]:
    """``url`` through a ``Proxy`` of its own, and the proxy (down at the end)."""
    parts = urlsplit(url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = (
        f"{parts.username}@127.0.0.1:{proxy.port}" if parts.username else f"127.0.0.1:{proxy.port}"
    )
    try:
        yield urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), proxy
    finally:
        proxy.down()


def cut_mid_run(
    args: list[str], url: str, cwd: Path, timeout: float = 120
) -> tuple[subprocess.Popen[str], str, str]:
    """``flock-es ARGS`` started; once its run on ``url`` has done 8 tasks, every
    connection to ``url``'s database ended (a failover). The process once it ended,
    its output and its errors."""
    proc = start_cli(args, cwd)
    try:
        wait_done(url, 8)
        cut_connections(url)
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    return proc, out, err
