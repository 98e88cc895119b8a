"""Strip credentials from anything that is about to be recorded or shown.

Two nets: keys that name a secret (``api_key``, ``Authorization``, ...) lose
their value whatever it looks like, and strings lose anything that looks like
a credential (``sk-...``, ``Bearer ...``, AWS key ids) or that equals a secret
actually in use: the value of an environment variable whose name says it is
one (``OPENAI_API_KEY``, ``*_TOKEN``, ...) or a key passed in model settings
(``register_secret``).

Example::

    redact({"api_key": "x", "messages": ["key sk-abc123456789"]})
    # {'api_key': '[redacted]', 'messages': ['key [redacted]']}
"""

from __future__ import annotations

import os
import re
from typing import Any

_SECRET_KEYS = re.compile(
    r"(api[_-]?key|authorization|auth|token|secret|password|credential|aws_|azure_ad|bearer)",
    re.IGNORECASE,
)
_SECRET_VALUES = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9._\-]{8,}|AKIA[0-9A-Z]{12,}|xai-[A-Za-z0-9]{8,})"
)
_ENV_SECRET = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL|ACCESS_KEY)", re.IGNORECASE)
REDACTED = "[redacted]"
# Shorter values would also match ordinary text.
_MIN_SECRET = 8

_registered: set[str] = set()
_env_cache: tuple[int, tuple[str, ...]] = (-1, ())


def register_secret(value: object) -> None:
    """Treat ``value`` as a credential from now on (a key given in code, not in the env)."""
    if isinstance(value, str) and len(value) >= _MIN_SECRET:
        _registered.add(value)


def _known_secrets() -> tuple[str, ...]:
    global _env_cache
    environ = os.environ
    # Re-scanned only when the environment changes size; a changed value of the same
    # variable is caught by the pattern net, and keys in code by register_secret.
    if _env_cache[0] != len(environ):
        found = {
            v
            for k, v in environ.items()
            if _ENV_SECRET.search(k) and len(v) >= _MIN_SECRET and not k.endswith("_FILE")
        }
        _env_cache = (len(environ), tuple(sorted(found, key=len, reverse=True)))
    if _registered:
        return tuple(sorted(set(_env_cache[1]) | _registered, key=len, reverse=True))
    return _env_cache[1]


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret-looking keys and values replaced."""
    return _redact(value, _known_secrets())


def _redact(value: Any, known: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(k, str) and _SECRET_KEYS.search(k) and not k.endswith("_tokens"):
                out[k] = REDACTED if v is not None else None
            else:
                out[k] = _redact(v, known)
        return out
    if isinstance(value, list):
        return [_redact(v, known) for v in value]
    if isinstance(value, str):
        return _redact_str(value, known)
    return value


def _redact_str(text: str, known: tuple[str, ...]) -> str:
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return str(_SECRET_VALUES.sub(REDACTED, text))


def redact_text(text: str) -> str:
    """``text`` with credentials replaced (for error messages and terminal output)."""
    return _redact_str(text, _known_secrets())
