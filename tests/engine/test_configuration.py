"""Options, registration and dependency injection: defaults and clear errors."""

from __future__ import annotations

import os
import sys
import types
from datetime import timedelta

import pytest
from dependency_injector import containers, providers

from evertask import EverTaskOptions, add_evertask
from evertask_abstractions import (
    AuditLevel,
    CancellationToken,
    ConfigurationError,
    DuplicateHandlerError,
    EverTask,
    EverTaskHandler,
    LinearRetryPolicy,
    QueuedTaskStatus,
    QueueFullBehavior,
    TaskDispatcher,
)
from tests.engine.tasks import ALL, Ping, PingHandler
from tests.helpers import Container, Probe, build_host, wait_status


def test_defaults_follow_evertask() -> None:
    o = EverTaskOptions()
    cpus = os.cpu_count() or 1
    assert o.max_degree_of_parallelism == max(4, cpus * 2)
    assert o.channel_capacity == max(1000, cpus * 200)
    assert isinstance(o.default_retry_policy, LinearRetryPolicy)
    assert [d.total_seconds() for d in o.default_retry_policy.delays()] == [0.5, 0.5, 0.5]
    assert o.default_timeout is None
    assert o.throw_if_unable_to_persist is True
    assert o.default_audit_level is AuditLevel.FULL
    assert o.persistent_logger.enabled is False
    assert o.persistent_logger.max_logs_per_task == 1000


def test_queue_defaults_by_origin() -> None:
    b = add_evertask(
        Container(), lambda o: o.register_handler(PingHandler).set_max_degree_of_parallelism(7)
    )
    b.add_queue("extra")
    configs = b._queue_configs()
    assert configs["default"].max_degree_of_parallelism == 7
    assert configs["default"].queue_full_behavior is QueueFullBehavior.WAIT
    assert configs["recurring"].max_degree_of_parallelism == 7
    assert configs["extra"].max_degree_of_parallelism == 1
    assert configs["extra"].channel_capacity == 500
    assert configs["extra"].queue_full_behavior is QueueFullBehavior.FALLBACK_TO_DEFAULT


@pytest.mark.parametrize(
    ("setter", "value", "message"),
    [
        ("set_max_degree_of_parallelism", 0, "max_degree_of_parallelism must be an integer >= 1"),
        ("set_channel_options", 0, "channel capacity must be an integer >= 1"),
        ("set_default_timeout", timedelta(seconds=-1), "must be positive"),
        ("set_default_retry_policy", "nope", "is not a retry policy"),
        ("set_shutdown_grace_period", -1, "must not be negative"),
        ("use_sharded_scheduler", -2, "shards must be an integer >= 0"),
    ],
)
def test_invalid_options_raise_clear_errors(setter: str, value: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        getattr(EverTaskOptions(), setter)(value)


def test_invalid_queue_options() -> None:
    b = add_evertask(Container(), lambda o: o.register_handler(PingHandler))
    with pytest.raises(ConfigurationError, match="max_degree_of_parallelism"):
        b.add_queue("q", lambda q: q.set_max_degree_of_parallelism(0))
    with pytest.raises(ConfigurationError, match="channel_capacity"):
        b.add_queue("q", lambda q: q.set_channel_capacity(-5))
    with pytest.raises(ConfigurationError, match="non-empty name"):
        b.add_queue("")
    with pytest.raises(ConfigurationError, match="built in"):
        b.add_queue("default")


def test_no_handlers_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="No task handlers were registered"):
        add_evertask(Container()).build()


def _module(name: str, source: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    sys.modules[name] = mod
    exec(compile(source, name, "exec"), mod.__dict__)
    return mod


def test_duplicate_handler_names_both() -> None:
    mod = _module(
        "dup_handlers_mod",
        "from evertask_abstractions import EverTaskHandler\n"
        "from tests.engine.tasks import Ping\n"
        "class FirstPingHandler(EverTaskHandler[Ping]):\n"
        "    async def handle(self, task, cancellation): pass\n"
        "class SecondPingHandler(EverTaskHandler[Ping]):\n"
        "    async def handle(self, task, cancellation): pass\n",
    )
    with pytest.raises(DuplicateHandlerError, match="FirstPingHandler and .*SecondPingHandler"):
        add_evertask(Container(), lambda o: o.register_tasks_from_module(mod)).build()


def test_register_from_package_and_module_name() -> None:
    host = add_evertask(
        Container(), lambda o: o.register_tasks_from_package("tests.engine.scanpkg")
    ).build()
    descriptors = {d.handler_class.__name__: d for d in host.engine.registry.descriptors()}
    assert set(descriptors) == {"AlphaHandler", "BetaHandler"}
    assert descriptors["AlphaHandler"].is_async and not descriptors["BetaHandler"].is_async
    with pytest.raises(ConfigurationError, match="Cannot import module 'no.such.module'"):
        EverTaskOptions().register_tasks_from_module("no.such.module")


class Mailer:
    pass


class Mail(EverTask):
    to: str


class MailHandler(EverTaskHandler[Mail]):
    def __init__(self, mailer: Mailer) -> None:
        super().__init__()
        self.mailer = mailer

    async def handle(self, task: Mail, cancellation: CancellationToken) -> None:
        pass


class Counter:
    def __init__(self) -> None:
        self.n = 0


class Scoped:
    pass


SEEN: list[tuple[object, object]] = []  # the instances: kept alive, so ids stay unique


class Job(EverTask):
    i: int


class JobHandler(EverTaskHandler[Job]):
    def __init__(
        self, counter: Counter, scoped: Scoped, scoped_again: Scoped, retries: int = 3
    ) -> None:
        super().__init__()
        self.counter, self.scoped, self.again = counter, scoped, scoped_again

    async def handle(self, task: Job, cancellation: CancellationToken) -> None:
        self.counter.n += 1
        assert self.scoped is self.again  # one instance per execution
        SEEN.append((self.counter, self.scoped))


class Step(EverTask):
    n: int


class StepHandler(EverTaskHandler[Step]):
    def __init__(self, dispatcher: TaskDispatcher, probe: Probe) -> None:
        super().__init__()
        self.dispatcher = dispatcher
        self.probe = probe

    async def handle(self, task: Step, cancellation: CancellationToken) -> None:
        self.probe.record("step", task.n)
        if task.n < 3:
            await self.dispatcher.dispatch(Step(n=task.n + 1))


def test_missing_dependency_is_reported_at_build() -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"parameter 'mailer' \(.*Mailer\) has no provider.*providers.Singleton",
    ):
        add_evertask(Container(), lambda o: o.register_handler(MailHandler)).build()


async def test_constructor_injection_by_type_scoped_per_execution() -> None:
    seen = SEEN
    seen.clear()

    class C(containers.DeclarativeContainer):
        counter = providers.Singleton(Counter)
        scoped = providers.ContextLocalSingleton(Scoped)

    c = C()
    host, _ = build_host([JobHandler], container=c)
    async with host:
        ids = [await host.dispatcher.dispatch(Job(i=i)) for i in range(3)]
        for t in ids:
            await wait_status(host, t, QueuedTaskStatus.COMPLETED)
    assert c.counter().n == 3
    assert len({id(s[0]) for s in seen}) == 1  # singleton shared
    assert len({id(s[1]) for s in seen}) == 3  # a new scoped instance per execution


async def test_handler_can_inject_the_dispatcher_and_chain_tasks() -> None:
    host, c = build_host([*ALL, StepHandler])
    async with host:
        await host.dispatcher.dispatch(Step(n=1))
        await c.probe().wait_for(lambda: c.probe().count("step") == 3)


async def test_eager_resolution_builds_the_handler_at_dispatch() -> None:
    built: list[int] = []

    class Eager(EverTask):
        pass

    class EagerHandler(EverTaskHandler[Eager]):
        def __init__(self) -> None:
            super().__init__()
            built.append(1)

        async def handle(self, task: Eager, cancellation: CancellationToken) -> None:
            pass

    host, _ = build_host([EagerHandler], lambda o: o.disable_lazy_handler_resolution())
    async with host:
        host.engine.queues.default.pause()
        tid = await host.dispatcher.dispatch(Eager())
        assert built == [1]  # built before it ran
        host.engine.queues.default.resume()
        await wait_status(host, tid, QueuedTaskStatus.COMPLETED)
    assert built == [1]


async def test_persist_failure_raises_by_default_and_runs_in_memory_when_allowed() -> None:
    from evertask import MemoryTaskStorage
    from evertask_abstractions import PersistenceError

    class Broken(MemoryTaskStorage):
        async def persist(self, task):  # type: ignore[no-untyped-def]
            raise OSError("disk full")

    host, c = build_host(ALL, storage=False, builder=lambda b: b.use_storage(Broken()))
    async with host:
        with pytest.raises(
            PersistenceError, match="could not be persisted, so it was not run.*disk full"
        ):
            await host.dispatcher.dispatch(Ping(n=1))
    host, c = build_host(
        ALL,
        lambda o: o.set_throw_if_unable_to_persist(False),
        storage=False,
        builder=lambda b: b.use_storage(Broken()),
    )
    async with host:
        await host.dispatcher.dispatch(Ping(n=2))
        await c.probe().wait_for(lambda: ("ping", 2) in c.probe().calls)


async def test_failing_status_writes_are_retried_never_marking_failed() -> None:
    from evertask import MemoryTaskStorage

    class Flaky(MemoryTaskStorage):
        failures = 2

        async def set_completed(self, task_id, *args, **kw):  # type: ignore[no-untyped-def]
            if self.failures:
                self.failures -= 1
                raise ConnectionError("db went away")
            return await super().set_completed(task_id, *args, **kw)

    storage = Flaky()
    host, _ = build_host(ALL, storage=False, builder=lambda b: b.use_storage(storage))
    async with host:
        tid = await host.dispatcher.dispatch(Ping(n=1))
        await wait_status(host, tid, QueuedTaskStatus.COMPLETED)
    assert storage.failures == 0
