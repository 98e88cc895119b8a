"""The prompt a model agent sends, the schema it asks for, and parsing the answer."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from flock_es.domain.json_values import NOT_JSON, payload_problem
from flock_es.errors import OutputValidationError

__all__ = [
    "SCHEMA_INTRO",
    "build_messages",
    "describe_validation",
    "json_candidates",
    "json_encoder",
    "json_text",
    "output_schema",
    "parse_output",
    "schema_by_reference",
    "schema_text",
]


def output_schema(
    publishes: Sequence[type[BaseModel]], fan_out: dict[str, int] | None = None
) -> dict[str, Any]:
    """One type: its JSON schema. Several: an object with one property per type.

    ``fan_out`` (type name -> N): that property is a list of exactly N.
    Cached per tuple of types (building a schema costs about a millisecond);
    treat the result as read-only.
    """
    return _output_schema(tuple(publishes), tuple(sorted((fan_out or {}).items())))


@functools.lru_cache(maxsize=256)
def _output_schema(
    publishes: tuple[type[BaseModel], ...], fan_out: tuple[tuple[str, int], ...] = ()
) -> dict[str, Any]:
    if len(publishes) == 1 and not fan_out:
        return publishes[0].model_json_schema()
    counts = dict(fan_out)
    defs: dict[str, Any] = {}
    props: dict[str, Any] = {}
    for cls in publishes:
        schema = cls.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        defs[cls.__name__] = schema
        ref = {"$ref": f"#/$defs/{cls.__name__}"}
        n = counts.get(cls.__name__)
        props[cls.__name__] = (
            ref if n is None else {"type": "array", "items": ref, "minItems": n, "maxItems": n}
        )
    return {
        "type": "object",
        "title": "Outputs",
        "properties": props,
        "required": list(props),
        "$defs": defs,
    }


def json_encoder(
    *,
    ensure_ascii: bool = True,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
) -> Callable[[Any], str]:
    """``json.dumps`` with these options, as a function whose encoder is built once.

    ``JSONEncoder.encode`` runs ``iterencode``'s Python (a closure and a new C
    encoder per call: some 30 lines, three encodes per model call, issue 14 (e))
    before the C encoder does the work; here the C encoder is made once and
    called directly. The same text, except that a value holding itself raises
    ``RecursionError`` rather than ``ValueError`` (no circular check: what is
    encoded here, payloads and requests, is JSON data)."""
    enc = json.JSONEncoder(ensure_ascii=ensure_ascii, sort_keys=sort_keys, default=default)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator: the encoder as it is
        return enc.encode
    quote = json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
    chunks = make(
        None,
        enc.default,
        quote,
        None,
        enc.key_separator,
        enc.item_separator,
        sort_keys,
        False,
        True,
    )
    join = "".join

    def encode(value: Any) -> str:
        return join(chunks(value, 0))

    return encode


json_text = json_encoder(ensure_ascii=False)
"""``json.dumps(value, ensure_ascii=False)``, its encoder built once (``json_encoder``).
The prompt's payloads, the agent's earlier artifacts and the offline model's answers."""

SCHEMA_INTRO = "Answer with a single JSON object that validates against this JSON schema, "
SCHEMA_INTRO += "and nothing else:\n"


def build_messages(
    agent: str,
    description: str,
    inputs: list[dict[str, Any]],
    schema: dict[str, Any],
    tools: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The system and user messages of a model agent's call (docs/models.md shows one).

    The schema closes the system message; a client that sends it as
    ``response_format`` replaces it there with a reference (``schema_by_reference``),
    so a provider never reads it twice.
    """
    key = (agent, description, tuple(tools), id(schema))
    hit = _SYSTEM.get(key)
    if hit is not None and hit[0] is schema:
        system = hit[1]
    else:
        system = (
            f"You are the agent {agent!r} in a multi-agent system.\n"
            + (f"Your role: {description}\n" if description else "")
            + (f"You can call these tools before answering: {', '.join(tools)}.\n" if tools else "")
            + SCHEMA_INTRO
            + schema_text(schema)
        )
        if len(_SYSTEM) >= 1024:
            _SYSTEM.clear()
        _SYSTEM[key] = (schema, system)
    return [{"role": "system", "content": system}, {"role": "user", "content": _inputs(inputs)}]


# (agent, description, tools, id(schema)) -> (schema, the system message): every call of
# an agent sends the same one, built once (the schema's text copied into it each time
# before). The entry holds the schema, so its id cannot be reused while cached.
_SYSTEM: dict[tuple[str, str, tuple[str, ...], int], tuple[dict[str, Any], str]] = {}


# id(schema) -> (schema, its JSON text). The entry holds the schema, so its id cannot
# be reused while cached; output_schema hands out the same dict for the same types.
_SCHEMA_TEXT: dict[int, tuple[dict[str, Any], str]] = {}


def schema_text(schema: dict[str, Any]) -> str:
    """``schema`` as JSON text, as the prompt shows it (kept for the schemas of
    ``output_schema``, which are read-only: every call of an agent sends the same)."""
    hit = _SCHEMA_TEXT.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    text = json.dumps(schema, ensure_ascii=False)
    if len(_SCHEMA_TEXT) >= 256:
        _SCHEMA_TEXT.clear()
    _SCHEMA_TEXT[id(schema)] = (schema, text)
    return text


def _inputs(inputs: list[dict[str, Any]]) -> str:
    types = sorted({str(inp["type"]) for inp in inputs})
    if len(inputs) == 1:
        head = f"The input: one {types[0]} artifact."
    elif len(types) == 1:
        head = f"The input: a batch of these {len(inputs)} {types[0]} artifacts; answer once for all of them."
    else:
        head = f"The input: these {len(inputs)} artifacts ({', '.join(types)}), together."
    return (
        head + "\n" + "\n".join(f"- {inp['type']}: {json_text(inp['payload'])}" for inp in inputs)
    )


def schema_by_reference(messages: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """``messages`` with the schema in the system message replaced by a reference to
    the ``response_format`` named ``name`` (for a provider that takes one)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        text = m.get("content")
        if m.get("role") == "system" and isinstance(text, str) and SCHEMA_INTRO in text:
            head = text[: text.index(SCHEMA_INTRO)]
            m = {
                **m,
                "content": head
                + f"Answer with a single JSON object in the response format {name!r}, and nothing else.",
            }
        out.append(m)
    return out


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)


def json_candidates(content: str) -> list[Any]:
    """Every JSON value an answer may mean, most likely first.

    Real models wrap their JSON: a sentence then a fenced block, the JSON then
    an explanation, several fenced blocks. Tried in order: the whole answer,
    each fenced block, then each object or list embedded in the prose.
    """
    out: list[Any] = []
    seen: set[str] = set()

    def add(text: str) -> None:
        text = text.strip()
        if not text or text in seen:
            return
        seen.add(text)
        try:
            out.append(json.loads(text))
        except json.JSONDecodeError:
            return

    add(content)
    for match in _FENCE.finditer(content):
        add(match.group(2))
    decoder = json.JSONDecoder()
    pos = 0
    while len(out) < 16:
        starts = [i for i in (content.find("{", pos), content.find("[", pos)) if i >= 0]
        if not starts:
            break
        i = min(starts)
        try:
            value, end = decoder.raw_decode(content, i)
        except json.JSONDecodeError:
            pos = i + 1
            continue
        key = content[i:end]
        if key not in seen:
            seen.add(key)
            out.append(value)
        pos = end
    return out


def describe_validation(exc: ValidationError) -> str:
    """Every error of ``exc`` on one line: ``Title: N validation error(s); loc: msg; ...``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {err.get('msg')}")
    return f"{exc.title}: {exc.error_count()} validation error(s); " + "; ".join(parts)


def parse_output(
    content: str, publishes: Sequence[type[BaseModel]], fan_out: dict[str, int] | None = None
) -> list[BaseModel]:
    """Validate a model's answer into output objects, or raise OutputValidationError.

    The first JSON value in the answer that validates wins (see
    ``json_candidates``); if none does, the error names every validation
    problem of the first one, so the re-ask can quote them all.

    Example::

        parse_output('Here you go:\n```json\n{"label": "x"}\n```', [Tag])  # [Tag(label='x')]
    """
    # The common answer is one JSON value and nothing else: it is the first
    # candidate, so when it validates the others need not be looked for.
    try:
        whole = json.loads(content)
    except json.JSONDecodeError:
        pass
    else:
        try:
            return _validate(whole, publishes, fan_out, content)
        except OutputValidationError:
            pass  # the full search below reports the same first error
    candidates = json_candidates(content)
    if not candidates:
        try:
            json.loads(content)
        except json.JSONDecodeError as exc:
            raise OutputValidationError(f"the answer is not JSON: {exc}", raw=content) from None
    first: OutputValidationError | None = None
    for data in candidates:
        try:
            return _validate(data, publishes, fan_out, content)
        except OutputValidationError as exc:
            first = first or exc
    assert first is not None
    raise first


def _validate(
    data: Any,
    publishes: Sequence[type[BaseModel]],
    fan_out: dict[str, int] | None,
    content: str,
) -> list[BaseModel]:
    outputs = _typed(data, publishes, fan_out, content)
    # ``json.loads`` reads ``NaN`` and a lone ``"\\ud83d"``; the log cannot hold either,
    # so such an answer is invalid here and is asked again, as any other is.
    for o in outputs:
        try:
            dumped = o.model_dump(mode="json")
        except (PydanticSerializationError, UnicodeDecodeError) as exc:
            raise OutputValidationError(f"{type(o).__name__}: {exc}", raw=content) from None
        problem = payload_problem(type(o), dumped)
        if problem is not None:
            raise OutputValidationError(f"{problem}: {NOT_JSON}", raw=content)
    return outputs


def _typed(
    data: Any,
    publishes: Sequence[type[BaseModel]],
    fan_out: dict[str, int] | None,
    content: str,
) -> list[BaseModel]:
    try:
        if len(publishes) == 1 and not fan_out:
            return [publishes[0].model_validate(data)]
        if not isinstance(data, dict):
            raise OutputValidationError("expected a JSON object keyed by type name", raw=content)
        names = [cls.__name__ for cls in publishes]
        if not any(n in data for n in names):
            raise OutputValidationError(
                f"expected a JSON object keyed by type name ({', '.join(names)})", raw=content
            )
        if fan_out:
            return _fanned(data, publishes, fan_out, content)
        return [cls.model_validate(data[cls.__name__]) for cls in publishes if cls.__name__ in data]
    except ValidationError as exc:
        raise OutputValidationError(describe_validation(exc), raw=content) from None


def _fanned(
    data: dict[str, Any],
    publishes: Sequence[type[BaseModel]],
    fan_out: dict[str, int],
    content: str,
) -> list[BaseModel]:
    out: list[BaseModel] = []
    for cls in publishes:
        name = cls.__name__
        if name not in data:
            continue
        n = fan_out.get(name)
        if n is None:
            out.append(cls.model_validate(data[name]))
            continue
        items = data[name]
        if not isinstance(items, list) or len(items) != n:
            got = f"{len(items)} items" if isinstance(items, list) else type(items).__name__
            raise OutputValidationError(
                f"{name}: expected a list of exactly {n}, got {got}", raw=content
            )
        out.extend(cls.model_validate(item) for item in items)
    return out
