"""A dead worker of this machine: its task leases are taken over at once, not when
they expire (issue 13). Real processes, real SIGKILL, both backends.

The workers take a lease of 600 s, longer than the test may take: the run can
only complete because the survivor saw the victim's pid gone.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from flock_es.log.lease import gone_workers, new_worker_id, worker_ended
from tests.test_workers import (
    assert_exactly_once,
    cli,
    crash_test,
    fanout,
    kill_when,
    kinds,
    open_started,
    paid_calls,
    shared_db,
    workers,
)

__all__ = ["shared_db"]  # the fixture, used by name


def test_gone_workers_are_the_dead_processes_of_this_host() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    live, ended = new_worker_id(), new_worker_id()
    worker_ended(ended)  # closed: what it could not give back is taken over at once
    ids = [f"{host}:{dead.pid}:0", live, f"elsewhere-{host}:{dead.pid}:0", ended]
    # Another machine's worker cannot be checked from here: waited out, never taken.
    assert gone_workers([*ids, "not-a-worker-id"]) == [ids[0], ended]
    assert live.startswith(f"{host}:{os.getpid()}:")


@crash_test
def test_a_killed_worker_of_this_machine_is_taken_over_before_its_lease_expires(
    tmp_path: Path, shared_db: str
) -> None:
    # Tasks of 1 s: the victim, killed while it has one in flight, cannot finish it
    # in the moment between the check and the kill.
    program, env = fanout(40, 1.0)
    args = ("--concurrency", "4", "--lease", "600")
    with workers(program, shared_db, 2, tmp_path, *args, env=env) as procs:
        run = cli("run", program, "--db", shared_db, "--no-execute", "-q", env=env)
        try:
            victim = procs[0]
            kill_when(
                victim,
                lambda: len(paid_calls(shared_db)) >= 4 and open_started(shared_db, victim.pid) > 0,
            )
            paid_before = paid_calls(shared_db)
            orphaned = open_started(shared_db, victim.pid)
            _out, err = run.communicate(timeout=240)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    assert run.returncode == 0, err
    assert "40 done, 0 failed" in err
    run_id = assert_exactly_once(shared_db, 40, paid_before)
    again = [b for b in kinds(shared_db, run_id, "task.started") if int(str(b["attempt"])) > 1]
    assert len(again) >= orphaned > 0
    assert all(f":{procs[1].pid}:" in str(b["worker"]) for b in again)
