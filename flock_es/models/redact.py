"""Strip credentials from anything that is about to be recorded or shown."""

from __future__ import annotations

import re
from typing import Any

_SECRET_KEYS = re.compile(
    r"(api[_-]?key|authorization|auth|token|secret|password|credential|aws_|azure_ad|bearer)",
    re.IGNORECASE,
)
_SECRET_VALUES = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9._\-]{8,}|AKIA[0-9A-Z]{12,}|xai-[A-Za-z0-9]{8,})"
)
REDACTED = "[redacted]"


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret-looking keys and values replaced."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(k, str) and _SECRET_KEYS.search(k) and not k.endswith("_tokens"):
                out[k] = REDACTED
            else:
                out[k] = redact(v)
        return out
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _SECRET_VALUES.sub(REDACTED, value)
    return value


def redact_text(text: str) -> str:
    return str(_SECRET_VALUES.sub(REDACTED, text))
