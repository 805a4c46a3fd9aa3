"""Building handlers from a dependency-injector container by constructor type annotations.

Each constructor parameter is resolved by its annotated type: the engine's own services
(the dispatcher, the storage), then any provider of the container whose provided class is
that type or a subclass of it. Parameters with defaults may stay unresolved. Errors are
reported at ``build()``, naming the handler, the parameter and the fix.

Scoping: every execution runs in a fresh ``contextvars`` context, so a
``providers.ContextLocalSingleton`` yields one instance per execution (a per-run scope),
``Singleton`` one per process and ``Factory`` one per injection.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator
from typing import Any

from dependency_injector import providers

from evertask_abstractions import ConfigurationError, EverTaskHandler

__all__ = ["HandlerFactoryBuilder"]

Provider = Callable[[], Any]


def _provided_type(provider: Any) -> type | None:
    if isinstance(provider, providers.Dependency):
        it = provider.instance_of
        return it if isinstance(it, type) and it is not object else None
    if isinstance(provider, providers.Object):
        value = provider.provides
        return None if value is None else type(value)
    cls = getattr(provider, "cls", None)
    if isinstance(cls, type):
        return cls
    provides = getattr(provider, "provides", None)
    if isinstance(provides, type):
        return provides
    if callable(provides):
        try:
            hint = typing.get_type_hints(provides).get("return")
        except Exception:
            return None
        origin = typing.get_origin(hint) or hint
        if isinstance(origin, type):
            # Resource providers annotate generators: Iterator[T] / AsyncIterator[T]
            args = typing.get_args(hint)
            if args and origin.__module__ in ("collections.abc", "typing"):
                inner = args[0]
                return inner if isinstance(inner, type) else None
            return origin
    return None


def _walk(container: Any) -> Iterator[Any]:
    for provider in getattr(container, "providers", {}).values():
        if isinstance(provider, providers.Container | providers.DependenciesContainer):
            yield from _walk(provider)
        else:
            yield provider


class HandlerFactoryBuilder:
    """Indexes a container's providers by type and builds a factory per handler class."""

    def __init__(self, container: Any, builtins: dict[type, Provider]) -> None:
        self._builtins = builtins
        self._index: list[tuple[type, Any]] = []
        if container is not None:
            for provider in _walk(container):
                provided = _provided_type(provider)
                if provided is not None:
                    self._index.append((provided, provider))

    def _find(self, wanted: type) -> Provider | None:
        for kind, provider in self._builtins.items():
            if (isinstance(wanted, type) and issubclass(kind, wanted)) or kind is wanted:
                return provider
        exact = [p for t, p in self._index if t is wanted]
        if exact:
            return exact[0]  # type: ignore[no-any-return]
        sub = [p for t, p in self._index if isinstance(wanted, type) and issubclass(t, wanted)]
        if len(sub) > 1:
            raise ConfigurationError(
                f"Several container providers supply a {wanted.__qualname__}; annotate the "
                "parameter with the concrete class or keep one provider."
            )
        return sub[0] if sub else None

    def build(self, handler: type[EverTaskHandler]) -> Callable[[], EverTaskHandler]:  # type: ignore[type-arg]
        """A zero-argument factory returning a new handler instance."""
        own = [p for t, p in self._index if t is handler]
        if own:
            provider = own[0]
            return lambda: provider()
        init = handler.__init__
        if init is EverTaskHandler.__init__ or init is object.__init__:
            return handler
        try:
            hints = typing.get_type_hints(init)
        except Exception as exc:
            raise ConfigurationError(
                f"Cannot read the constructor annotations of {handler.__qualname__}: {exc}"
            ) from exc
        params: list[tuple[str, Provider]] = []
        positional = True  # every resolved parameter in order: build with positional args
        for name, param in inspect.signature(init).parameters.items():
            if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            wanted = hints.get(name)
            provider = self._find(wanted) if isinstance(wanted, type) else None
            if provider is None:
                if param.default is not param.empty:
                    positional = False
                    continue
                shown = getattr(wanted, "__qualname__", repr(wanted))
                raise ConfigurationError(
                    f"Cannot build handler {handler.__qualname__}: constructor parameter "
                    f"{name!r} ({shown}) has no provider. Add e.g. "
                    f"`{name} = providers.Singleton({shown})` to the container passed to "
                    "add_evertask(), or give the parameter a default."
                )
            if param.kind is param.POSITIONAL_ONLY:
                raise ConfigurationError(
                    f"{handler.__qualname__}.__init__ uses positional-only parameters; "
                    "handlers are built with keyword arguments."
                )
            if param.kind is param.KEYWORD_ONLY:
                positional = False
            params.append((name, provider))
        if not params:
            return handler
        make: Callable[..., EverTaskHandler] = handler  # type: ignore[type-arg]
        if positional and len(params) == 1:
            p1 = params[0][1]
            return lambda: make(p1())
        if positional and len(params) == 2:
            p1, p2 = params[0][1], params[1][1]
            return lambda: make(p1(), p2())

        def factory() -> EverTaskHandler:  # type: ignore[type-arg]
            return handler(**{n: p() for n, p in params})

        return factory
