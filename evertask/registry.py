"""Handler discovery and the closed task-type registry (only registered types are ever loaded)."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import logging
import math
import typing
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import ModuleType

from pydantic import BaseModel

from evertask_abstractions import (
    ConfigurationError,
    DuplicateHandlerError,
    EverTask,
    EverTaskHandler,
    RateLimitPolicy,
    RetryPolicy,
    TaskNotRegisteredError,
    TaskSerializationError,
)

__all__ = ["HandlerDescriptor", "HandlerRegistry", "handler_type_name", "infer_task_type"]

log = logging.getLogger("evertask.registry")

HandlerClass = type[EverTaskHandler]  # type: ignore[type-arg]


def handler_type_name(cls: type) -> str:
    """The stored name of a handler class."""
    return f"{cls.__module__}:{cls.__qualname__}"


def infer_task_type(handler: HandlerClass) -> type[EverTask] | None:
    """The ``T`` of ``EverTaskHandler[T]`` in the class hierarchy (or ``task_type``)."""
    explicit = handler.__dict__.get("task_type")
    if explicit is not None:
        return explicit  # type: ignore[no-any-return]
    for klass in handler.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            origin = typing.get_origin(base)
            if isinstance(origin, type) and issubclass(origin, EverTaskHandler):
                args = typing.get_args(base)
                if args and isinstance(args[0], type) and issubclass(args[0], EverTask):
                    return args[0]
    inherited = getattr(handler, "task_type", None)
    return inherited if isinstance(inherited, type) else None


@dataclass(slots=True, eq=False)
class HandlerDescriptor:
    """Everything the engine needs about one handler class, computed once."""

    handler_class: HandlerClass
    task_class: type[EverTask]
    task_type_name: str
    handler_type_name: str
    is_async: bool
    queue_name: str | None
    retry_policy: RetryPolicy | None
    timeout: timedelta | None
    hooks: frozenset[str] = field(default_factory=frozenset)
    factory: Callable[[], EverTaskHandler] | None = None  # type: ignore[type-arg]
    resolved_queues: dict[bool, str] = field(default_factory=dict)  # recurring? -> queue
    rate_limit: RateLimitPolicy | None = None
    max_concurrency: int | None = None
    key_selector: Callable[[EverTask], str | None] | None = None
    """An overridden ``get_rate_limit_key`` (``None``: the task's ``rate_limit_key``)."""
    throttled: bool = False
    """Whether runs pass the throttle gate (a rate limit or a max concurrency)."""


_HOOKS = ("on_started", "on_completed", "on_error", "on_retry", "dispose")


class HandlerRegistry:
    """Maps task classes and stored type names to their handler descriptors."""

    def __init__(self) -> None:
        self._by_task: dict[type[EverTask], HandlerDescriptor] = {}
        self._by_name: dict[str, HandlerDescriptor] = {}
        self.skipped: list[str] = []
        """Why each discovered handler class was not registered (one line each)."""

    def __len__(self) -> int:
        return len(self._by_task)

    def descriptors(self) -> list[HandlerDescriptor]:
        """All registered handlers."""
        return list(self._by_task.values())

    def scan(self, modules: Iterable[ModuleType], classes: Iterable[HandlerClass] = ()) -> None:
        """Register the handler classes defined in ``modules`` plus ``classes``.

        Every candidate that is not registered gets a line in :attr:`skipped` saying why.
        """
        seen: set[HandlerClass] = set()
        candidates: list[HandlerClass] = []
        imported: dict[HandlerClass, str] = {}  # handler classes a module only imports
        scanned: list[str] = []
        for module in modules:
            scanned.append(module.__name__)
            for value in list(vars(module).values()):
                if (
                    isinstance(value, type)
                    and issubclass(value, EverTaskHandler)
                    and value is not EverTaskHandler
                ):
                    if value.__module__ == module.__name__:
                        candidates.append(value)
                    else:
                        imported.setdefault(value, module.__name__)
        candidates.extend(classes)
        for cls in candidates:
            if cls in seen:
                continue
            seen.add(cls)
            self.add(cls, explicit=cls in classes)
        registered = {d.handler_class for d in self._by_task.values()}
        for cls, where in imported.items():
            if cls not in seen and cls not in registered and infer_task_type(cls) is not None:
                self.skipped.append(
                    f"{cls.__qualname__} in {where}: it is only imported there (defined in "
                    f"{cls.__module__}); only classes defined in a scanned module are "
                    f"registered, so register {cls.__module__} or the class itself"
                )
        if not candidates and not imported and scanned:
            self.skipped.append(
                "no EverTaskHandler subclass is defined in the scanned module(s) "
                + ", ".join(scanned)
            )

    def add(self, cls: HandlerClass, *, explicit: bool = True) -> HandlerDescriptor | None:
        """Register one handler class; abstract or generic handlers are skipped with a warning."""
        task_class = infer_task_type(cls)
        if task_class is None or inspect.isabstract(cls):
            reason = _skip_reason(cls, task_class)
            if explicit:
                raise ConfigurationError(
                    f"Handler {handler_type_name(cls)} cannot be used: {reason}."
                )
            log.warning("Handler %s was skipped: %s.", handler_type_name(cls), reason)
            self.skipped.append(f"{cls.__qualname__} in {cls.__module__}: {reason}")
            return None
        if cls.handle is EverTaskHandler.handle:
            raise ConfigurationError(
                f"Handler {handler_type_name(cls)} does not implement handle(); expected "
                + _expected("handle", task_class)
                + "."
            )
        _check_methods(cls, task_class)
        existing = self._by_task.get(task_class)
        if existing is not None and existing.handler_class is not cls:
            raise DuplicateHandlerError(
                f"Task {task_class.__qualname__} has two handlers: "
                f"{existing.handler_type_name} and {handler_type_name(cls)}. "
                "EverTask runs exactly one handler per task type; remove or rename one of them."
            )
        name = task_class.evertask_type_name()
        clash = self._by_name.get(name)
        if clash is not None and clash.task_class is not task_class:
            raise DuplicateHandlerError(
                f"Task classes {clash.task_class!r} and {task_class!r} share the stored name "
                f"{name!r}; give one of them a different task_name."
            )
        policy = cls.retry_policy
        if policy is not None and not isinstance(policy, RetryPolicy):
            raise ConfigurationError(
                f"{handler_type_name(cls)}.retry_policy is not a RetryPolicy: {policy!r}."
            )
        timeout = cls.timeout
        if timeout is not None and (not isinstance(timeout, timedelta) or timeout <= timedelta(0)):
            raise ConfigurationError(
                f"{handler_type_name(cls)}.timeout must be a positive timedelta or None, "
                f"got {timeout!r}."
            )
        rate_limit, max_concurrency, key_selector = _throttling(cls)
        hooks = frozenset(h for h in _HOOKS if getattr(cls, h) is not getattr(EverTaskHandler, h))
        descriptor = HandlerDescriptor(
            handler_class=cls,
            task_class=task_class,
            task_type_name=name,
            handler_type_name=handler_type_name(cls),
            is_async=inspect.iscoroutinefunction(cls.handle),
            queue_name=cls.queue_name,
            retry_policy=policy,
            timeout=timeout,
            hooks=hooks,
            rate_limit=rate_limit,
            max_concurrency=max_concurrency,
            key_selector=key_selector,
            throttled=rate_limit is not None or max_concurrency is not None,
        )
        self._by_task[task_class] = descriptor
        self._by_name[name] = descriptor
        return descriptor

    def for_task(self, task: EverTask) -> HandlerDescriptor:
        """The descriptor for a task instance; raises :class:`TaskNotRegisteredError`."""
        descriptor = self._by_task.get(type(task))
        if descriptor is None:
            if not isinstance(task, EverTask):
                raise TypeError(
                    f"dispatch() expects an EverTask instance, got {type(task).__qualname__}."
                )
            raise TaskNotRegisteredError(
                f"No handler is registered for task {type(task).__qualname__}. Define an "
                f"EverTaskHandler[{type(task).__qualname__}] in a module passed to "
                "register_tasks_from_module() / register_tasks_from_package()."
            )
        return descriptor

    def load_task(self, type_name: str, payload: str) -> tuple[HandlerDescriptor, EverTask]:
        """Rebuild a stored task (``TaskNotRegisteredError`` / ``TaskSerializationError``)."""
        descriptor = self._by_name.get(type_name)
        if descriptor is None:
            class_name = type_name.rpartition(":")[2].rpartition(".")[2] or "MyTask"
            if not class_name.isidentifier():
                class_name = "MyTask"
            raise TaskNotRegisteredError(
                f"Task type {type_name!r} is not registered in this process, so its stored "
                "row cannot be loaded. Register its handler (register_tasks_from_module() / "
                "register_tasks_from_package()). If the class moved or was renamed, give it a "
                f"stable name: class {class_name}(EverTask, task_name={type_name!r}) loads "
                "these rows again, and the stored name no longer depends on where the class "
                "lives."
            )
        try:
            task = descriptor.task_class.model_validate_json(payload)
        except Exception as exc:
            raise TaskSerializationError(
                f"Stored payload of {type_name!r} cannot be read: {exc}"
            ) from exc
        return descriptor, task


def _throttling(
    cls: HandlerClass,
) -> tuple[RateLimitPolicy | None, int | None, Callable[[EverTask], str | None] | None]:
    """A handler's ``rate_limit``, ``max_concurrency`` and key selector, validated."""
    name = handler_type_name(cls)
    rate_limit = cls.rate_limit
    if rate_limit is not None and not isinstance(rate_limit, RateLimitPolicy):
        raise ConfigurationError(
            f"{name}.rate_limit must be a RateLimitPolicy or None, got {rate_limit!r}; e.g. "
            "rate_limit = RateLimitPolicy(10, timedelta(seconds=1))."
        )
    limit = cls.max_concurrency
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigurationError(
            f"{name}.max_concurrency must be an integer >= 1 or None, got {limit!r}."
        )
    selector: Callable[[EverTask], str | None] | None = None
    raw = inspect.getattr_static(cls, "get_rate_limit_key")
    if raw is not inspect.getattr_static(EverTaskHandler, "get_rate_limit_key"):
        if not isinstance(raw, classmethod | staticmethod):
            raise ConfigurationError(
                f"{name}.get_rate_limit_key must be a classmethod (or staticmethod): it is "
                "called before the handler is built. Write @classmethod def "
                "get_rate_limit_key(cls, task) -> str | None."
            )
        selector = cls.get_rate_limit_key
    return rate_limit, limit, selector


def _skip_reason(cls: HandlerClass, task_class: type[EverTask] | None) -> str:
    """Why a discovered handler class cannot be registered."""
    if task_class is None:
        params = [
            a
            for base in cls.__dict__.get("__orig_bases__", ())
            for a in typing.get_args(base)
            if isinstance(a, typing.TypeVar)
        ]
        if params:
            return (
                f"its task type is the type variable {params[0]} (a generic base class; "
                f"subclass it as class MyHandler({cls.__qualname__}[MyTask]))"
            )
        base = next((b for b in cls.__bases__ if issubclass(b, EverTaskHandler)), EverTaskHandler)
        return (
            f"no task type parameter; write class {cls.__qualname__}"
            f"({base.__qualname__}[MyTask]) with a concrete EverTask subclass, or set task_type"
        )
    missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
    return f"it is abstract (not implemented: {missing}); implement them in a subclass"


# the arguments the engine passes to each method (after self), and their documented form
_CALLS: dict[str, tuple[int, str]] = {
    "handle": (2, "handle(self, task: {task}, cancellation: CancellationToken) -> None"),
    "on_started": (1, "on_started(self, task_id: uuid.UUID) -> None"),
    "on_completed": (1, "on_completed(self, task_id: uuid.UUID) -> None"),
    "on_error": (
        3,
        "on_error(self, task_id: uuid.UUID, exception: BaseException | None, "
        "message: str | None) -> None",
    ),
    "on_retry": (
        4,
        "on_retry(self, task_id: uuid.UUID, attempt: int, exception: BaseException, "
        "delay: timedelta) -> None",
    ),
    "dispose": (0, "dispose(self) -> None"),
}


def _expected(name: str, task_class: type[EverTask]) -> str:
    form = _CALLS[name][1].format(task=task_class.__qualname__)
    if name == "handle":
        return f"async def {form} (or a plain def {form.partition('(')[0]}(...), run in a thread)"
    return f"async def {form}"


class _Annotation:
    """Shows a string annotation (``from __future__ import annotations``) without quotes."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _shown(signature: inspect.Signature) -> inspect.Signature:
    def plain(annotation: object) -> object:
        return _Annotation(annotation) if isinstance(annotation, str) else annotation

    return signature.replace(
        parameters=[
            p.replace(annotation=plain(p.annotation)) for p in signature.parameters.values()
        ],
        return_annotation=plain(signature.return_annotation),
    )


def _check_methods(cls: HandlerClass, task_class: type[EverTask]) -> None:
    """Refuse ``handle`` and overridden hooks the engine could not call (found at run time
    otherwise, after the retries)."""
    for name, (count, _) in _CALLS.items():
        raw = inspect.getattr_static(cls, name)
        if raw is inspect.getattr_static(EverTaskHandler, name):
            continue  # not overridden
        where = f"Handler {handler_type_name(cls)}.{name}"
        expected = _expected(name, task_class)
        if isinstance(raw, staticmethod | classmethod) or not (
            callable(raw) and hasattr(raw, "__get__")
        ):
            raise ConfigurationError(
                f"{where} is not a method ({type(raw).__qualname__}: {raw!r}); expected {expected}."
            )
        try:
            signature = inspect.signature(raw)
        except (TypeError, ValueError):
            continue  # a callable without a readable signature: trust it
        try:
            signature.bind(*range(count + 1))  # self plus the engine's positional arguments
        except TypeError:
            raise ConfigurationError(
                f"{where} has the signature {name}{_shown(signature)}, which the engine "
                "cannot call "
                f"with its {count} argument(s); expected {expected}. Extra parameters must "
                "have defaults or be keyword-only with defaults."
            ) from None


def dump_task(task: EverTask) -> str:
    """Serialize a task payload; raises :class:`TaskSerializationError` with the reason.

    A float NaN or infinity anywhere in the payload is refused: JSON has no such values and
    pydantic would store ``null``, which the task could not be read back from.
    """
    try:
        # what model_dump_json() does with its defaults, without its keyword handling
        data = task.__pydantic_serializer__.to_json(task)
    except Exception as exc:
        raise TaskSerializationError(
            f"Task {type(task).__qualname__} cannot be serialized to JSON: {exc}. "
            "Task fields must be JSON-serializable data (str, int, float, bool, datetime, "
            "UUID, lists, dicts, nested pydantic models)."
        ) from exc
    text = data.decode()
    # pydantic writes NaN and infinity as null: only then look for them (in the text:
    # `b"null" in data` first takes b"null" for a byte value, raising and clearing a TypeError)
    if "null" in text:
        where = _non_finite_float(task, "")
        if where is not None:
            path, value = where
            raise TaskSerializationError(
                f"Task {type(task).__qualname__} cannot be serialized to JSON: field "
                f"{path!r} is {value!r}, and JSON has no NaN or infinity (it would be stored "
                "as null and the task could not be read back). Use None for a missing "
                "value, or hold such numbers in a str field or a Decimal field declared "
                "with Field(allow_inf_nan=True), which keeps them as text."
            )
    return text


def _non_finite_float(value: object, path: str) -> tuple[str, float] | None:
    """The path and value of the first float NaN or infinity inside ``value``, if any."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path or "<root>", value)
    if isinstance(value, BaseModel):
        items: Iterable[tuple[str, object]] = (
            (f"{path}.{k}" if path else k, v) for k, v in value.__dict__.items()
        )
        extra = value.__pydantic_extra__
        if extra:
            items = itertools.chain(items, ((f"{path}.{k}", v) for k, v in extra.items()))
    elif isinstance(value, Mapping):
        items = ((f"{path}[{k!r}]", v) for k, v in value.items())
    elif isinstance(value, list | tuple | set | frozenset | deque):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = ((f"{path}.{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value))
    else:
        return None
    for sub_path, sub in items:
        found = _non_finite_float(sub, sub_path)
        if found is not None:
            return found
    return None


__all__ += ["dump_task"]
