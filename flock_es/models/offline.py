"""The ``offline`` model: deterministic, in-process, no network, no litellm.

It answers with JSON that validates against the requested schema (string and
list bounds, enums and ``Literal``s, numbers with bounds, nested models),
filled with text drawn from the input artifacts. The answer is seeded by a
digest of the request, so the same request always gets the same answer.

Tools: offered tools (``with_tools``, ``with_mcps``) are each called once,
in the order offered, with arguments built from their parameter schemas the
same way (a parameter named like an input field gets that field's value);
the answer then also draws on what the tools returned (a JSON object's fields
fill output fields of the same name).

Simulated latency, for demos and benchmarks: ``offline?latency=2`` (seconds),
or the ``FLOCK_ES_OFFLINE_LATENCY`` environment variable. The answer is built
within that time and arrives when it is up, to the tens of microseconds
(``models/waker.py``), as a network answer would.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import random
import re
import time
from typing import Any
from urllib.parse import parse_qs

from flock_es.errors import ConfigError
from flock_es.models.base import ModelRequest, ModelResponse
from flock_es.models.prompt import json_text
from flock_es.models.waker import sleep_precisely

__all__ = ["OfflineModel", "tool_calls"]

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# Outputs of earlier offline calls start with "Field name: "; strip it so text does not nest.
_LABEL = re.compile(r"^(?:[A-Z][A-Za-z ]{0,40}?\d*: )+")
_LISTING = re.compile(r"perspective|categor|included|topics|sources|covered", re.IGNORECASE)
_FILLER = (
    "The available material points to a consistent picture",
    "Further developments are expected as the story unfolds",
    "Observers note the broader significance of the announcement",
    "Reactions so far have been measured but attentive",
)


class _Text:
    """Sentences and words harvested from the inputs, to fill string fields."""

    def __init__(self, inputs: list[dict[str, Any]]) -> None:
        self.strings: list[str] = []
        self.fields: dict[str, Any] = {}
        # One-word fields that differ across inputs (a batch's categories, say).
        self.labels: list[str] = []
        columns: dict[str, list[str]] = {}
        for inp in inputs:
            payload = inp.get("payload", {})
            self._walk(payload, None)
            for k, v in payload.items() if isinstance(payload, dict) else ():
                if isinstance(v, str) and v and " " not in v.strip():
                    columns.setdefault(k, []).append(v)
        for values in columns.values():
            if len(values) == len(inputs) > 1 and len(set(values)) == len(values):
                self.labels = values
                break
        sentences: list[str] = []
        for chunk in self.strings:
            for part in _SENTENCE.split(chunk):
                part = _LABEL.sub("", part.strip())
                if len(part.split()) >= 3 and part not in sentences:
                    sentences.append(part)
        text = " ".join(self.strings)
        self.sentences = sentences or list(_FILLER)
        self.words = re.findall(r"[A-Za-z][A-Za-z'\-]+", text) or ["offline", "answer"]

    def _walk(self, value: Any, key: str | None) -> None:
        if key is not None and key not in self.fields:
            self.fields[key] = value
        if isinstance(value, str):
            text = _LABEL.sub("", " ".join(value.split()))
            if len(text.split()) >= 3:
                self.strings.append(text)
        elif isinstance(value, dict):
            for k, v in value.items():
                self._walk(v, k)
        elif isinstance(value, list):
            for v in value:
                self._walk(v, None)


def _tool_results(request: ModelRequest) -> list[dict[str, Any]]:
    """What the tools returned in this conversation, as pseudo inputs."""
    out: list[dict[str, Any]] = []
    for m in request.messages:
        if m.get("role") != "tool":
            continue
        content = str(m.get("content") or "")
        try:
            value: Any = json.loads(content)
        except ValueError:
            value = content
        out.append({"payload": value if isinstance(value, dict) else {"result": value}})
    return out


def tool_calls(request: ModelRequest) -> list[dict[str, Any]]:
    """Call every offered tool once, before the first answer of a conversation."""
    if not request.tools or any(m.get("role") == "tool" for m in request.messages):
        return []
    calls: list[dict[str, Any]] = []
    for i, spec in enumerate(request.tools):
        fn = spec.get("function", {})
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        gen = _Generator(request.model_copy(update={"output_schema": params}))
        gen.copy_fields = True
        args = gen.value(params, "")
        calls.append(
            {"id": f"call_{i}", "name": str(fn.get("name", "")), "arguments": json.dumps(args)}
        )
    return calls


def _fits(value: Any, kind: Any, schema: dict[str, Any]) -> bool:
    """Whether an input field's ``value`` is a valid number or flag for ``schema``."""
    if kind == "boolean":
        return isinstance(value, bool)
    if kind not in ("integer", "number") or isinstance(value, bool):
        return False
    if not isinstance(value, int if kind == "integer" else int | float):
        return False
    lo, hi = schema.get("minimum"), schema.get("maximum")
    return (lo is None or value >= lo) and (hi is None or value <= hi)


class _Generator:
    def __init__(self, request: ModelRequest) -> None:
        self.request = request
        self.root = request.output_schema
        self.agent = request.agent
        self.hint = f"{request.agent} {request.description}".lower()
        self.n_inputs = len(request.inputs)
        self.used: set[str] = set()
        # Tool arguments: a number or flag named like an input field takes its value too.
        self.copy_fields = False

    # The seeded generator and the text harvested from the inputs, each made when an
    # answer first needs it (the same seed, so the same draws): an answer of numbers
    # only never reads the inputs' text, and one that draws nothing (enums picked by
    # the agent's name, fields copied) never seeds a Mersenne Twister (some 30,000
    # instructions, a twentieth of a model call's path in workload (e), issue 14).
    @functools.cached_property
    def rng(self) -> random.Random:
        return random.Random(int(self.request.digest()[:16], 16))

    @functools.cached_property
    def text(self) -> _Text:
        return _Text([*self.request.inputs, *_tool_results(self.request)])

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while "$ref" in schema and seen < 32:
            ref = schema["$ref"]
            node: Any = self.root
            for part in ref.lstrip("#/").split("/"):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            merged = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**node, **merged}
            seen += 1
        return schema

    def value(self, schema: dict[str, Any], name: str, depth: int = 0) -> Any:
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.choose_enum(list(schema["enum"]), name)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [self.resolve(o) for o in schema[key]]
                non_null = [o for o in options if o.get("type") != "null"]
                return self.value((non_null or options)[0], name, depth)
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged.update(self.resolve(part))
            return self.value(merged, name, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        if kind == "object" or "properties" in schema:
            return self.obj(schema, depth)
        if kind == "array":
            return self.array(schema, name, depth)
        if self.copy_fields:
            copied = self.text.fields.get(name)
            if _fits(copied, kind, schema):
                return copied
        if kind == "integer":
            return int(self.number(schema, name, integer=True))
        if kind == "number":
            return self.number(schema, name, integer=False)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self.string(schema, name)

    def obj(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", props))
        out: dict[str, Any] = {}
        for key, sub in props.items():
            if key not in required and depth > 3:
                continue
            out[key] = self.value(sub, key, depth + 1)
        return out

    def array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        lo = int(schema.get("minItems", 0))
        hi = int(schema.get("maxItems", max(lo, 3)))
        n = max(lo, min(hi, 3 if lo <= 3 else lo))
        items = self.resolve(schema.get("items", {"type": "string"}))
        if items.get("type") == "string" and self.text.labels and _LISTING.search(name):
            labels = self.text.labels[: int(schema.get("maxItems", len(self.text.labels)))]
            if len(labels) >= lo:
                return list(labels)
        out: list[Any] = []
        for i in range(n):
            v = self.value(items, f"{name}_{i}", depth + 1)
            if schema.get("uniqueItems") and v in out and isinstance(v, str):
                v = f"{v} ({i + 1})"
            out.append(v)
        return out

    def number(self, schema: dict[str, Any], name: str, integer: bool) -> float:
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        hi = schema.get("maximum", schema.get("exclusiveMaximum"))
        if any(w in name for w in ("total", "count", "num")) and self.n_inputs:
            guess: float = self.n_inputs
        else:
            low = lo if lo is not None else 0
            high = hi if hi is not None else (low + 10)
            guess = self.rng.uniform(low, high)
        # Round first, then clamp with a step the rounding cannot undo.
        step = 1.0 if integer else 0.001
        guess = float(round(guess)) if integer else round(guess, 3)
        if "exclusiveMinimum" in schema:
            guess = max(guess, schema["exclusiveMinimum"] + step)
        if "exclusiveMaximum" in schema:
            guess = min(guess, schema["exclusiveMaximum"] - step)
        if lo is not None and "minimum" in schema:
            guess = max(guess, lo)
        if hi is not None and "maximum" in schema:
            guess = min(guess, hi)
        return guess

    def choose_enum(self, options: list[Any], name: str) -> Any:
        # An agent named "technology_analyst" should answer "technology".
        for opt in options:
            if isinstance(opt, str) and opt.lower() in self.hint:
                return opt
        return self.rng.choice(options)

    def sentence(self) -> str:
        """A sentence from the inputs, preferring ones not used yet in this answer."""
        fresh = [x for x in self.text.sentences if x not in self.used]
        pick = self.rng.choice(fresh or self.text.sentences)
        self.used.add(pick)
        return pick

    def string(self, schema: dict[str, Any], name: str) -> str:
        lo = int(schema.get("minLength", 0))
        hi = int(schema.get("maxLength", max(lo, 400)))
        fmt = schema.get("format")
        if fmt == "date-time":
            return "2025-01-01T00:00:00Z"
        if fmt == "date":
            return "2025-01-01"
        base = name.split("_")[0] if name else ""
        copied = self.text.fields.get(name)
        if isinstance(copied, str) and lo <= len(copied) <= hi:
            return copied
        if name.endswith("name") and (not base or base in self.agent or base == "name"):
            text = self.agent
        else:
            text = self.sentence()
        while len(text) < lo:
            text = f"{text} {self.sentence()}"
        if len(text) > hi:
            text = text[:hi].rstrip() if hi > 0 else ""
            while len(text) < lo:
                text += "."
        return text


class OfflineModel:
    """The deterministic in-process model. See the module docstring."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.name = "offline"
        self.calls = 0

    @classmethod
    def from_string(cls, model: str) -> OfflineModel:
        env = os.environ.get("FLOCK_ES_OFFLINE_LATENCY", "") or "0"
        try:
            latency = float(env)
        except ValueError:
            raise ConfigError(
                f"FLOCK_ES_OFFLINE_LATENCY must be a number of seconds, got {env!r}"
            ) from None
        sep = "?" if "?" in model else (":" if ":" in model else None)
        if sep is not None:
            query = model.split(sep, 1)[1]
            if sep == ":":
                query = f"latency={query}"
            params = parse_qs(query)
            unknown = set(params) - {"latency"}
            if unknown:
                raise ConfigError(f"unknown offline model option(s): {', '.join(sorted(unknown))}")
            try:
                latency = float(params.get("latency", [latency])[0])
            except ValueError:
                raise ConfigError(
                    f"offline latency must be a number of seconds: {model!r}"
                ) from None
        if not math.isfinite(latency) or latency < 0:
            raise ConfigError(f"offline latency must be a finite, non-negative number: {latency}")
        return cls(latency)

    def check(self) -> None:
        return None

    def answer(self, request: ModelRequest) -> str:
        gen = _Generator(request)
        return json_text(gen.value(request.output_schema, ""))

    async def complete(self, request: ModelRequest) -> ModelResponse:
        t0 = time.perf_counter()
        if self.latency > 0:
            # The request is on its way: other agents send theirs before this answer
            # is worked out, within the latency (as a server works while clients
            # wait), so its CPU delays neither them nor the answer.
            await asyncio.sleep(0)
        t1 = time.perf_counter()
        calls = tool_calls(request)
        content = "" if calls else self.answer(request)
        # The simulated provider's time: its latency, or its work if that took longer.
        # Not the wall time until this coroutine runs again, which also holds the
        # event loop's other tasks (600 started together: a tenth of a second each).
        latency = max(self.latency, time.perf_counter() - t1)
        prompt_chars = sum(len(str(m.get("content", ""))) for m in request.messages)
        # Always yield, as a real call would: a zero-latency model must not run
        # agents that were started together one after another. The wait ends on
        # time, as a network answer would (asyncio.sleep can be 1 ms late).
        await sleep_precisely(self.latency - (time.perf_counter() - t0) if self.latency else 0)
        self.calls += 1
        return ModelResponse(
            content=content,
            tokens_in=max(1, prompt_chars // 4),
            tokens_out=max(1, len(content) // 4),
            cost=0.0,
            latency_ms=latency * 1000.0,
            tool_calls=calls,
        )
