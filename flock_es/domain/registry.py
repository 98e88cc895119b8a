"""Registry of artifact types by name, so logged payloads can become objects again.

A type's name in the log is its class name, or the name given to
``@flock_type(name=...)``. The class name stays an alias either way, so logs
written before a type got a registered name still load.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from flock_es.errors import ArtifactValidationError, DefinitionError

__all__ = [
    "flock_tool",
    "flock_type",
    "register",
    "resolve",
    "resolve_tool",
    "to_object",
    "tool_name",
    "type_name",
]

M = TypeVar("M", bound=type[BaseModel])
F = TypeVar("F", bound=Callable[..., Any])

_TYPES: dict[str, type[BaseModel]] = {}
# Types registered under a name other than their class name.
_NAMES: dict[type[BaseModel], str] = {}


@overload
def flock_type(cls: M, *, name: str | None = None) -> M: ...
@overload
def flock_type(cls: None = None, *, name: str | None = None) -> Callable[[M], M]: ...
def flock_type(cls: M | None = None, *, name: str | None = None) -> M | Callable[[M], M]:
    """Register a pydantic model as an artifact type, as Flock's ``@flock_type`` does.

    The type's name in the log (``artifact.published``, subscriptions,
    ``store.list_by_type``, typed dicts given to ``publish``) is its class name,
    or ``name``: a stable name that survives renaming or moving the class, and
    tells apart two classes with one class name. Example::

        @flock_type
        class BreakingNews(BaseModel):
            headline: str

        @flock_type(name="news.Story")
        class Story(BaseModel):
            text: str
    """
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise DefinitionError(f"@flock_type(name=...) takes a non-empty string, got {name!r}")

    def register_as(model: M) -> M:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise DefinitionError(f"@flock_type needs a pydantic BaseModel class, got {model!r}")
        if name is None or name == model.__name__:
            _NAMES.pop(model, None)
        else:
            _NAMES[model] = name
            _TYPES[name] = model
            # The class name stays an alias (unless another type has it), so a typed
            # dict or an older log that names the class still loads.
            _TYPES.setdefault(model.__name__, model)
            return model
        _TYPES[model.__name__] = model
        return model

    return register_as if cls is None else register_as(cls)


def type_name(cls_or_name: type[BaseModel] | str) -> str:
    """The name of a type in the log (``@flock_type(name=)``, else the class name).

    Example: ``type_name(Story) == "news.Story"``; ``type_name("X") == "X"``.
    """
    if isinstance(cls_or_name, str):
        return cls_or_name
    return _NAMES.get(cls_or_name, cls_or_name.__name__)


def register(cls: type[BaseModel]) -> None:
    """Register a type implicitly (types used in ``consumes``/``publishes``)."""
    _TYPES.setdefault(type_name(cls), cls)
    _TYPES.setdefault(cls.__name__, cls)


def resolve(name: str) -> type[BaseModel] | None:
    """The registered class for ``name``, or None if this process has not seen it."""
    return _TYPES.get(name)


def to_object(name: str, payload: dict[str, Any]) -> BaseModel:
    """Rebuild a logged payload as an instance of its registered type."""
    cls = _TYPES.get(name)
    if cls is None:
        raise ArtifactValidationError(f"artifact type {name!r} is not registered in this program")
    return cls.model_validate(payload)


_TOOLS: dict[str, Callable[..., Any]] = {}


@overload
def flock_tool(func: F, *, name: str | None = None) -> F: ...
@overload
def flock_tool(func: None = None, *, name: str | None = None) -> Callable[[F], F]: ...
def flock_tool(func: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
    """Register a function as a tool, as Flock's ``@flock_tool`` does; returns it unchanged.

    Give it to agents with ``.with_tools([fn])``. ``name`` is the name the model
    sees and the log records for its calls (default: the function's name); in
    flock-core 0.5.7 ``name=`` only reaches its registry, not the model.
    Example::

        @flock_tool
        def lookup(ticker: str) -> float:
            "Latest price of a stock."
            return prices[ticker]

        @flock_tool(name="weather_now")
        async def weather(city: str) -> str: ...
    """
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise DefinitionError(f"@flock_tool(name=...) takes a non-empty string, got {name!r}")

    def register_tool(fn: F) -> F:
        if not callable(fn) or not hasattr(fn, "__name__"):
            raise DefinitionError(f"@flock_tool needs a function, got {fn!r}")
        tool = name or fn.__name__
        fn.__flock_tool__ = tool  # type: ignore[attr-defined]
        _TOOLS[tool] = fn
        return fn

    return register_tool if func is None else register_tool(func)


def tool_name(fn: Callable[..., Any]) -> str:
    """The name the model sees for a tool: ``@flock_tool(name=)``, else its ``__name__``."""
    name = getattr(fn, "__flock_tool__", None)
    return name if isinstance(name, str) else str(getattr(fn, "__name__", repr(fn)))


def resolve_tool(name: str) -> Callable[..., Any] | None:
    """The function registered with ``@flock_tool`` under ``name``, if any."""
    return _TOOLS.get(name)
