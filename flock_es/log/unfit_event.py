"""A stored event whose body is JSON but not its kind's: one line naming the
database, the run and the event, where the fold raised ``KeyError: 'task_id'``.

The check before a command reads a file (``integrity.verify``) proves every body
is JSON; it does not know each kind's fields, and checking them as each event is
read would tax the fold, which ``show``, ``resume`` and ``replay`` run over the
whole log and a run over every event it commits. So the fold trusts each body, and
the loops that fold a stored log catch what a body without a field (or with one of
another type) raises there (``FOLD_FAULTS``). Only then is that one event checked
against its kind's definition (``domain.validate``): if it fits, the fault is a
bug of flock-es, and keeps its traceback.

A salvage copies such an event as it is (its row reads, its JSON parses), so the
way out the message names is the run up to the event before it (``show --at``).

Example::

    e = None
    try:
        for e in reader.iter_events(run_id):
            apply(state, e)
    except FOLD_FAULTS:
        if (damaged := unfit_event(reader.path, e)) is None:
            raise
        raise damaged from None
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flock_es.domain.events import Event, EventKind
from flock_es.errors import DatabaseDamagedError
from flock_es.log.schema import damaged_message

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = ["FOLD_FAULTS", "unfit_event"]

FOLD_FAULTS = (KeyError, TypeError, AttributeError)
"""What reading a body's field raises when it is missing (``b["task_id"]``), or holds
another type (a list's ``.get``, a number indexed)."""


def unfit_event(where: Path | str, event: Event | None) -> DatabaseDamagedError | None:
    """The error for ``event``, read from the database ``where``, if its body does not
    fit its kind's definition; None if it does (the fold's fault is then a bug)."""
    if event is None:
        return None
    # Here, not at the top: pydantic is loaded for the check of a body, never to fold one.
    from pydantic import ValidationError

    from flock_es.domain.validate import check_body

    try:
        check_body(event.kind, event.body)
    except ValidationError as exc:
        problem = _first_problem(exc)
    else:
        return None
    seq = event.seq or 0
    what = f"event {seq} of run {event.run_id} is not a valid {event.kind}: {problem}"
    way_out = None
    if event.kind is not EventKind.RUN_STARTED:
        db = f"--db {where}" if isinstance(where, Path) else "--db URL"
        way_out = f"`flock-es show {event.run_id} --at {seq - 1} {db}` shows the run before it"
    return DatabaseDamagedError(damaged_message(where, what, way_out or ""))


def _first_problem(exc: ValidationError) -> str:
    """The first of ``exc``'s errors, a missing field first (``task_id: field
    required``), and how many more there are."""
    errors = sorted(exc.errors(), key=lambda err: err["type"] != "missing")
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "the body"
    more = len(errors) - 1
    more_text = f", and {more} more problem{'s' if more > 1 else ''}" if more else ""
    return f"{where}: {first['msg'].lower()}{more_text}"
