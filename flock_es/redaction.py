"""Keep the secrets this process holds out of everything that is recorded or shown.

Exact redaction, never guessing on data: what is replaced is the *value* of a
secret that this process actually holds, wherever it appears:

* provider keys in the environment (any variable whose name says it holds a
  key, token, secret, password or credential, e.g. ``OPENAI_API_KEY``), and
  credentials embedded in a ``*_API_BASE`` / ``*_BASE_URL`` URL there;
* model settings given in code: ``api_key`` and every other setting whose name
  says it is a credential, every value of ``extra_headers`` / ``headers``, and
  the ``user:password`` of an ``api_base`` / ``base_url``
  (``register_settings``).

In recorded model *settings* those values are replaced by ``[redacted]``
whatever their length; everywhere else (prompts, answers, tool results, error
messages) a held secret of at least ``MIN_SECRET`` characters is replaced where
it occurs. A pattern (``sk-...``, ``Bearer ...`` followed by a long token) is
used only on error texts that come back from a provider
(``redact_provider_error``), anchored at word boundaries and requiring a
digit, so words like "risk-assessment" or "sk-learn" stay intact.

Not redacted, by design: what a user publishes. A key pasted into an artifact
payload is the user's data and is stored as given.

It sits at the package root, below every layer (standard library only): the
model clients, the runtime and the log's export all redact with it.

Example::

    register_settings({"api_key": "k-1234567890", "extra_headers": {"X-Key": "hdr-secret-1"}})
    redact_text("sent k-1234567890 and hdr-secret-1")   # 'sent [redacted] and [redacted]'
    redact_text("risk-assessment; sk-learn")             # unchanged
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = [
    "MIN_SECRET",
    "REDACTED",
    "held_secrets",
    "redact",
    "redact_provider_error",
    "redact_settings",
    "redact_text",
    "register_secret",
    "register_settings",
    "strip_url_credentials",
]

REDACTED = "[redacted]"
# A held secret shorter than this is only replaced in recorded settings: as a
# substring of free text it would match ordinary words.
MIN_SECRET = 8

_SECRET_NAME = re.compile(
    r"(api[_-]?key|key$|token|secret|password|passwd|credential|authorization|bearer)",
    re.IGNORECASE,
)
_ENV_SECRET = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL|ACCESS_KEY)", re.IGNORECASE)
_ENV_URL = re.compile(r"(API_BASE|BASE_URL|ENDPOINT)$", re.IGNORECASE)
_HEADER_SETTINGS = ("extra_headers", "headers", "default_headers")
_URL_SETTINGS = ("api_base", "base_url")
# Only for provider error texts: credential-shaped tokens, anchored, with a digit.
_PROVIDER_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:sk|xai|gsk|pk)-(?=[A-Za-z0-9_\-]*\d)[A-Za-z0-9_\-]{16,}"
    r"|(?<![A-Za-z0-9_\-])Bearer\s+(?=[A-Za-z0-9._\-]*\d)[A-Za-z0-9._\-]{16,}"
    r"|(?<![A-Za-z0-9])AKIA[0-9A-Z]{16}(?![A-Za-z0-9])"
)

_registered: set[str] = set()
_env_cache: tuple[int, frozenset[str]] = (-1, frozenset())


def register_secret(value: object) -> None:
    """Treat ``value`` as a credential from now on (a key given in code, not in the env)."""
    if isinstance(value, str) and value:
        _registered.add(value)
        if value != value.strip():
            _registered.add(value.strip())


def url_credentials(url: str) -> list[str]:
    """The ``user:password`` parts of ``url`` (raw and percent-decoded), if any."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    if "@" not in parts.netloc:
        return []
    userinfo = parts.netloc.rsplit("@", 1)[0]
    found = {userinfo, unquote(userinfo)}
    _user, _, password = userinfo.partition(":")
    found.update(p for p in (password, unquote(password)) if p)
    if password:  # a bare user name is not a secret, the pair and the password are
        return sorted(found, key=len, reverse=True)
    return sorted({userinfo, unquote(userinfo)}, key=len, reverse=True)


def strip_url_credentials(url: str) -> str:
    """``url`` without its ``user:password@`` part."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"{REDACTED}@{host}", parts.path, parts.query, parts.fragment))


def register_settings(settings: Mapping[str, Any]) -> None:
    """Register every credential held in model ``settings`` (see the module docstring)."""
    for key, value in settings.items():
        if key in _HEADER_SETTINGS and isinstance(value, Mapping):
            for v in value.values():
                register_secret(str(v))
        elif key in _URL_SETTINGS and isinstance(value, str):
            for cred in url_credentials(value):
                register_secret(cred)
        elif _SECRET_NAME.search(key) and isinstance(value, str):
            register_secret(value)


def _env_secrets() -> frozenset[str]:
    global _env_cache
    environ = os.environ
    # Re-scanned when the environment changes size (a variable added or removed).
    if _env_cache[0] != len(environ):
        found: set[str] = set()
        for k, v in environ.items():
            if not v or k.endswith("_FILE"):
                continue
            if _ENV_SECRET.search(k):
                found.add(v)
            elif _ENV_URL.search(k):
                found.update(url_credentials(v))
        _env_cache = (len(environ), frozenset(found))
    return _env_cache[1]


# ``held_secrets()`` as last worked out, with what it was worked out from: the
# environment's secrets (the cached frozenset) and how many were registered (the set
# only grows). Asked three times per model call; rebuilt only when either changed.
_held: tuple[frozenset[str], int, tuple[str, ...]] = (frozenset(), -1, ())


def held_secrets() -> tuple[str, ...]:
    """Every secret value known to this process, longest first (free-text replacement)."""
    global _held
    env = _env_secrets()
    if _held[0] is env and _held[1] == len(_registered):
        return _held[2]
    both = env | _registered
    known = tuple(sorted((s for s in both if len(s) >= MIN_SECRET), key=len, reverse=True))
    _held = (env, len(_registered), known)
    return known


def _replace(text: str, known: tuple[str, ...]) -> str:
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_text(text: str) -> str:
    """``text`` with every held secret value replaced; nothing else changes."""
    return _replace(text, held_secrets())


def redact_provider_error(text: str) -> str:
    """An error text from a provider: held secrets, then credential-shaped tokens, replaced."""
    return _PROVIDER_TOKEN.sub(REDACTED, redact_text(text))


def redact(value: Any) -> Any:
    """A copy of ``value`` (JSON-like) with every held secret value replaced in its strings."""
    return _redact(value, held_secrets())


def _redact(value: Any, known: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: _redact(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, known) for v in value]
    if isinstance(value, str) and known:
        return _replace(value, known)
    return value


def redact_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Model settings as recorded: credential settings and header values replaced."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if key in _HEADER_SETTINGS and isinstance(value, Mapping):
            out[key] = {k: REDACTED for k in value}
        elif key in _URL_SETTINGS and isinstance(value, str):
            out[key] = strip_url_credentials(value)
        elif _SECRET_NAME.search(key) and value is not None and not key.endswith("_tokens"):
            out[key] = REDACTED
        else:
            out[key] = redact(value)
    return out
