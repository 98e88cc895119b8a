"""Checking a litellm model string before any work, without paying litellm's import.

``import litellm`` takes seconds (4 s of CPU; 12 s or more on a busy
machine). A missing key must not wait for it, and a run that is going ahead
should not wait for it either before it starts. So:

* the common providers' key variables are known here, and checked against the
  environment directly (``missing_keys``); only a model string this table does
  not know (a bare ``gpt-4o``, a rarer provider) asks litellm itself;
* once the check has passed, litellm is imported in a background thread
  (``import_in_background``) while the program starts its run; the first call
  waits for it (``wait_for_litellm``) off the event loop.

Example::

    missing_keys("anthropic/claude-sonnet-4-5", {})   # ['ANTHROPIC_API_KEY'] when unset
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import warnings
from collections.abc import Mapping
from typing import Any

__all__ = [
    "KEYLESS",
    "PROVIDER_KEYS",
    "import_in_background",
    "import_litellm",
    "imported_litellm",
    "missing_keys",
    "wait_for_litellm",
]

# Provider prefix -> the environment variable litellm reads its key from.
PROVIDER_KEYS: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "text-completion-openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "xai": "XAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "cohere": "COHERE_API_KEY",
    "cohere_chat": "COHERE_API_KEY",
}
# Providers that run without a key (local servers).
KEYLESS = {"ollama", "ollama_chat", "hosted_vllm", "lm_studio", "llamafile", "vllm"}

_lock = threading.Lock()
_thread: threading.Thread | None = None


def missing_keys(model: str, settings: Mapping[str, Any]) -> list[str] | None:
    """The key variables ``model`` needs and the environment lacks; None: ask litellm."""
    if "/" not in model:
        return None
    provider = model.split("/", 1)[0]
    if provider in KEYLESS:
        return []
    var = PROVIDER_KEYS.get(provider)
    if var is None:
        return None
    if settings.get("api_key") or os.environ.get(var):
        return []
    return [var]


_UNAWAITED_LITELLM = r"coroutine '\w+\.acompletion\w*' was never awaited"


def import_litellm() -> Any:
    """litellm, imported once, without a network fetch of its cost map."""
    if "litellm" in sys.modules:
        module = sys.modules["litellm"]
        if getattr(module, "suppress_debug_info", False):
            return module
    with _lock:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        if not litellm.suppress_debug_info:
            litellm.suppress_debug_info = True
            # A call cancelled while litellm runs its sync part in an executor (a
            # worker that lost its database, a run stopped) leaves the coroutine that
            # part made unawaited: Python's warning about it is litellm's, not the
            # program's, and came out on stderr beside the one line that says why.
            warnings.filterwarnings("ignore", message=_UNAWAITED_LITELLM, category=RuntimeWarning)
            # litellm's import leaves a very large heap of long-lived objects; every
            # full collection then walks it and stalls the event loop for ~0.2 s
            # mid-run. Freezing them after one collection makes later ones cheap.
            gc.collect()
            gc.freeze()
    return litellm


def import_in_background(warm_up: Any = None) -> None:
    """Start importing litellm (then ``warm_up(litellm)``) in a daemon thread, once."""
    global _thread
    if _thread is not None or "litellm" in sys.modules:
        return

    def work() -> None:
        try:
            litellm = import_litellm()
            if warm_up is not None:
                warm_up(litellm)
        except Exception:
            return  # the first call imports it again and reports what is wrong

    _thread = threading.Thread(target=work, name="flock-es:import-litellm", daemon=True)
    _thread.start()


def imported_litellm() -> Any | None:
    """litellm if ``import_litellm`` has finished importing it (not one still under way)."""
    module = sys.modules.get("litellm")
    if module is not None and getattr(module, "suppress_debug_info", False):
        return module
    return None


async def wait_for_litellm() -> Any:
    """litellm, waiting for the background import off the event loop if it is running."""
    module = imported_litellm()
    if module is not None:
        return module
    return await asyncio.to_thread(import_litellm)
