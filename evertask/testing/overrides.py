"""Replacing one dependency of the application's container for a test."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from dependency_injector import providers

__all__ = ["Override", "resolve_provider"]


def resolve_provider(container: Any, target: Any) -> tuple[Any, str]:
    """The provider ``target`` names: a provider itself, or the (dotted) name of one of
    ``container``'s providers (``"email"``, ``"services.email"``); and a name for it."""
    if isinstance(target, providers.Provider):
        return target, repr(target)
    if not isinstance(target, str):
        raise TypeError(
            f"override() takes a provider or a provider's name, got {type(target).__name__}."
        )
    if container is None:
        raise LookupError(
            f"Cannot override {target!r}: the test host was built without a container."
        )
    provider: Any = container
    for part in target.split("."):
        provider = getattr(provider, "providers", {}).get(part)
        if provider is None:
            break
    if not isinstance(provider, providers.Provider) or isinstance(
        provider, providers.Container | providers.DependenciesContainer
    ):
        names = ", ".join(sorted(getattr(container, "providers", {}))) or "none"
        raise LookupError(
            f"The container has no provider named {target!r} (its providers: {names})."
        )
    return provider, target


class Override:
    """One provider overridden until :meth:`reset` (or the end of a ``with`` block).

    Created by :meth:`EverTaskTestHost.override <evertask.testing.EverTaskTestHost.override>`;
    the test host resets the overrides still active when it stops.
    """

    def __init__(
        self,
        provider: Any,
        value: Any,
        name: str,
        on_reset: Callable[[Override], None] | None = None,
    ) -> None:
        self.provider = provider
        self.value = value
        """What the provider gives while overridden (a provider passed in is called)."""
        self.name = name
        self._replacement = (
            value if isinstance(value, providers.Provider) else providers.Object(value)
        )
        self._on_reset = on_reset
        provider.override(self._replacement)
        self.active = True

    def reset(self) -> None:
        """Give the provider back what it gave before (idempotent; any order)."""
        if not self.active:
            return
        self.active = False
        provider, mine = self.provider, self._replacement
        if provider.last_overriding is mine:
            provider.reset_last_overriding()
        else:  # a later override is still active: remove only this one
            others = [p for p in provider.overridden if p is not mine]
            provider.reset_override()
            for other in others:
                provider.override(other)
        if self._on_reset is not None:
            self._on_reset(self)

    def __enter__(self) -> Any:
        return self.value

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.reset()

    def __repr__(self) -> str:
        state = "active" if self.active else "reset"
        return f"Override({self.name!r} -> {self.value!r}, {state})"
