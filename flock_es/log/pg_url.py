"""A PostgreSQL URL: checked where a ``--db`` value is parsed, shown without its password.

``urlsplit`` takes almost any text and fails only when a part is read: a port that
is not a number from 0 to 65535 (``:abc``, ``:99999``) or a host whose ``[`` is never
closed raised ``ValueError`` from ``describe_url``, deep in opening a reader, and
``runs``, ``run`` and ``tui`` ended in a traceback. ``check_url`` reads those parts
once, where the value is parsed (``ports.store_kind``), and says what is wrong in
one line; nothing here imports the driver, so the check costs no import.

Example::

    check_url("postgresql://u:pw@h:abc/db")
    # DatabaseError: bad PostgreSQL URL postgresql://u:***@h:abc/db: its port is not ...
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from flock_es.errors import DatabaseError

__all__ = ["check_url", "describe_url", "safe_url"]

# From the user name's ``:`` to the last ``@``: a password may hold an unescaped ``/``
# or ``@`` (libpq then fails on it), and the message must not print the part after it.
_PASSWORD = re.compile(r"(://[^:/@]*):[\s\S]*@")
_FORM = "postgresql://user[:password]@host[:port]/dbname"


def safe_url(url: str) -> str:
    """``url`` with its password written ``***``: what a message may print of a URL."""
    return _PASSWORD.sub(r"\1:***@", url)


def check_url(url: str) -> SplitResult:
    """``url``'s parts, or a one-line DatabaseError saying which part is malformed.

    The message names no value of the URL's but through ``safe_url``: with a ``/`` in
    a password, ``urlsplit`` takes the password's first part for the port.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # the only one urlsplit raises: an unclosed IPv6 bracket
        raise DatabaseError(_bad(url, "its host opens a '[' it never closes")) from None
    if "," in parts.netloc.rpartition("@")[2]:  # libpq's several hosts, h1:5432,h2:5433
        raise DatabaseError(_bad(url, "it names several hosts; flock-es takes one"))
    try:
        parts.port  # noqa: B018  (read for the check: it raises on a bad port)
    except ValueError:
        raise DatabaseError(_bad(url, "its port is not a number from 0 to 65535")) from None
    return parts


def describe_url(url: str) -> str:
    """The URL without its password, for messages and the log (DatabaseError if it is
    malformed, as ``check_url``)."""
    parts = check_url(url)
    host = parts.hostname or "localhost"
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def _bad(url: str, why: str) -> str:
    return f"bad PostgreSQL URL {safe_url(url)}: {why} (the form is {_FORM})"
