"""Handlers the engine could not call are refused at build(), not after their retries;
a build without handlers says why each discovered class was skipped."""

from __future__ import annotations

import sys
import types
import uuid
from typing import Any

import pytest

from evertask import add_evertask
from evertask_abstractions import (
    CancellationToken,
    ConfigurationError,
    EverTask,
    EverTaskHandler,
)
from tests.helpers import Container


class Job(EverTask):
    n: int = 0


def _build(*handlers: type) -> None:
    add_evertask(Container(), lambda o: o.register_handler(*handlers)).add_memory_storage().build()


def _module(name: str, source: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    sys.modules[name] = mod
    exec(compile(source, name, "exec"), mod.__dict__)
    return mod


class MissingCancellation(EverTaskHandler[Job]):
    async def handle(self, task: Job) -> None:  # type: ignore[override]
        pass


class ExtraRequired(EverTaskHandler[Job]):
    async def handle(self, task: Job, cancellation: CancellationToken, tenant: str) -> None:  # type: ignore[override]
        pass


class RequiredKeywordOnly(EverTaskHandler[Job]):
    def handle(self, task: Job, cancellation: CancellationToken, *, tenant: str) -> None:  # type: ignore[override]
        pass


class NotAFunction(EverTaskHandler[Job]):
    handle = None  # type: ignore[assignment]


class StaticHandle(EverTaskHandler[Job]):
    @staticmethod
    async def handle(task: Job, cancellation: CancellationToken) -> None:  # type: ignore[override]
        pass


@pytest.mark.parametrize(
    ("handler", "found"),
    [
        (MissingCancellation, "signature handle(self, task: Job) -> None"),
        (ExtraRequired, "tenant: str"),
        (RequiredKeywordOnly, "*, tenant: str"),
        (NotAFunction, "is not a method"),
        (StaticHandle, "is not a method"),
    ],
)
def test_a_handle_the_engine_cannot_call_fails_the_build(handler: type, found: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        _build(handler)
    message = str(caught.value)
    assert handler.__qualname__ in message and found in message, message
    assert "async def handle(self, task: Job, cancellation: CancellationToken) -> None" in message
    assert "plain def handle" in message


class Lenient(EverTaskHandler[Job]):
    """Defaulted and keyword-only extras, sync handle, hooks with *args: all callable."""

    def handle(  # type: ignore[override]
        self, task: Job, cancellation: CancellationToken, tries: int = 1, *, tag: str = ""
    ) -> None:
        pass

    async def on_started(self, task_id: uuid.UUID, *rest: Any) -> None:
        pass

    async def on_error(self, *args: Any, **kwargs: Any) -> None:
        pass

    def dispose(self, flush: bool = True) -> None:  # type: ignore[override]
        pass


def test_defaulted_and_keyword_only_extras_are_accepted() -> None:
    _build(Lenient)


class BadOnError(EverTaskHandler[Job]):
    async def handle(self, task: Job, cancellation: CancellationToken) -> None:
        pass

    async def on_error(self, task_id: uuid.UUID, exception: BaseException | None) -> None:  # type: ignore[override]
        pass


class BadOnRetry(EverTaskHandler[Job]):
    async def handle(self, task: Job, cancellation: CancellationToken) -> None:
        pass

    async def on_retry(self, task_id: uuid.UUID, attempt: int) -> None:  # type: ignore[override]
        pass


class BadDispose(EverTaskHandler[Job]):
    async def handle(self, task: Job, cancellation: CancellationToken) -> None:
        pass

    async def dispose(self, reason: str) -> None:  # type: ignore[override]
        pass


class BadOnStarted(EverTaskHandler[Job]):
    async def handle(self, task: Job, cancellation: CancellationToken) -> None:
        pass

    async def on_started(self) -> None:  # type: ignore[override]
        pass


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (
            BadOnError,
            "async def on_error(self, task_id: uuid.UUID, exception: BaseException | None, "
            "message: str | None) -> None",
        ),
        (
            BadOnRetry,
            "async def on_retry(self, task_id: uuid.UUID, attempt: int, "
            "exception: BaseException, delay: timedelta) -> None",
        ),
        (BadDispose, "async def dispose(self) -> None"),
        (BadOnStarted, "async def on_started(self, task_id: uuid.UUID) -> None"),
    ],
)
def test_hooks_with_a_wrong_arity_fail_the_build(handler: type, expected: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        _build(handler)
    message = str(caught.value)
    assert handler.__qualname__ in message and expected in message, message


def test_wrong_signatures_in_a_scanned_module_fail_the_build() -> None:
    mod = _module(
        "sig_check_mod",
        "from evertask_abstractions import EverTaskHandler\n"
        "from tests.engine.test_registration_checks import Job\n"
        "class JobHandler(EverTaskHandler[Job]):\n"
        "    async def handle(self, task): pass\n",
    )
    with pytest.raises(ConfigurationError, match=r"sig_check_mod:JobHandler\.handle"):
        add_evertask(Container(), lambda o: o.register_tasks_from_module(mod)).build()


def test_no_handlers_build_error_lists_each_skipped_class_and_why() -> None:
    _module(
        "skip_helpers_mod",
        "from evertask_abstractions import EverTaskHandler\n"
        "from tests.engine.test_registration_checks import Job\n"
        "class ImportedHandler(EverTaskHandler[Job]):\n"
        "    async def handle(self, task, cancellation): pass\n",
    )
    mod = _module(
        "skip_reasons_mod",
        "from typing import TypeVar\n"
        "from evertask_abstractions import EverTask, EverTaskHandler\n"
        "from skip_helpers_mod import ImportedHandler\n"
        "T = TypeVar('T', bound=EverTask)\n"
        "class H(EverTaskHandler):\n"
        "    async def handle(self, task, cancellation): pass\n"
        "class Base(EverTaskHandler[T]):\n"
        "    async def handle(self, task, cancellation): pass\n",
    )
    with pytest.raises(ConfigurationError) as caught:
        add_evertask(Container(), lambda o: o.register_tasks_from_module(mod)).build()
    message = str(caught.value)
    assert message.startswith("No task handlers were registered.")
    assert (
        "H in skip_reasons_mod: no task type parameter; write class H(EverTaskHandler[MyTask])"
        in message
    )
    assert "Base in skip_reasons_mod: its task type is the type variable ~T" in message
    assert "ImportedHandler in skip_reasons_mod: it is only imported there" in message
    assert "register skip_helpers_mod" in message


def test_no_handlers_build_error_says_when_modules_define_none() -> None:
    mod = _module("empty_handlers_mod", "X = 1\n")
    with pytest.raises(ConfigurationError, match="no EverTaskHandler subclass is defined in"):
        add_evertask(Container(), lambda o: o.register_tasks_from_module(mod)).build()
