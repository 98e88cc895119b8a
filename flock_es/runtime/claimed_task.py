"""One claimed task of a shared run, executed by a worker (``runtime/worker.py``).

``run_claimed`` runs the task with the executor a local run uses and commits its
outcome under the run's lock, caught up, and only while the task is still open
and its lease still the worker's: a task is never completed twice.

Example::

    await run_claimed(executor, task_id, link.lost, ran=lambda: slots.release())
"""

from __future__ import annotations

from collections.abc import Callable

from flock_es.domain.events import Event
from flock_es.errors import TaskEndedElsewhere
from flock_es.projection.state import is_open
from flock_es.runtime.executor import FATAL, Executor

__all__ = ["run_claimed"]


async def run_claimed(
    executor: Executor,
    task_id: str,
    lost: set[str] | None = None,
    ran: Callable[[], None] | None = None,
) -> None:
    """Execute a task this worker holds the lease of, with the executor a local run
    uses. Its outcome is decided under the run's lock, caught up, and only if the
    task is still open and its lease still ours (``lost`` names the leases the
    commit found taken over): a task is never completed twice.

    ``ran`` is called once the agent's work is over and only its outcome's commit
    is left (the worker then starts another task: a commit is a round trip to the
    database, and a slot held for it left quick agents' slots waiting on it)."""
    lost = lost if lost is not None else set()
    done = ran or _nothing
    kernel = executor.kernel
    task = kernel.state.tasks[task_id]
    agent = executor.agents.get(task.agent)

    def fail(exc: Exception, t0: float | None, waited: float = 0.0) -> Callable[[], list[Event]]:
        def build() -> list[Event]:
            if not is_open(kernel.state.tasks.get(task_id)) or task_id in lost:
                return []
            failed = [executor.failure(task, exc, t0, waited)]
            kernel.apply(failed)
            return failed

        return build

    if agent is None:
        missing = LookupError(f"agent {task.agent!r} is not defined in this program")
        done()
        await kernel.commit_decided(fail(missing, None))
        return
    run = executor.start(task, agent)
    try:
        outputs = await executor.outputs(run)
    except FATAL:
        raise
    except TaskEndedElsewhere:  # its lease was taken over: nothing of it commits here
        lost.add(task_id)
        done()
        return
    except Exception as exc:
        done()
        await kernel.commit_decided(fail(exc, run.t0, run.waited))
        await executor.on_error(run, exc)
        return
    done()

    refused: list[Exception] = []

    def complete() -> list[Event]:
        if not is_open(kernel.state.tasks.get(task_id)) or task_id in lost:
            return []
        try:
            return executor.completion(run, outputs, False)
        except FATAL:
            raise
        except Exception as error:  # an output the log cannot hold (``PayloadNotJson``):
            refused.append(error)  # the task fails, as a local run's does, not the commit
            return executor.failed_unit(run, error)

    await kernel.commit_decided(complete)
    for error in refused:
        await executor.on_error(run, error)


def _nothing() -> None:
    return None
