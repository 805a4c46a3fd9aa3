"""The console sample, tested with the testing kit: its handler, its container and the
dispatches of ``greet_everyone``, with the clock moved by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from evertask import QueuedTaskStatus
from evertask.testing import EverTaskHostFactory
from samples.console_app.app import Container, Greet, Greeter, configure, greet_everyone

START = datetime(2026, 1, 1, tzinfo=UTC)


async def test_greet_everyone_greets_ada_now_and_the_others_later(
    make_evertask_host: EverTaskHostFactory,
) -> None:
    container = Container()
    host = await make_evertask_host(container, configure)
    greeter = container.greeter()

    await greet_everyone(host.dispatcher)
    host.assert_dispatched(Greet(name="Ada"), at=START)
    host.assert_dispatched(Greet(name="Grace"), at=START + timedelta(milliseconds=200))
    host.assert_dispatched(Greet(name="Linus"), at=START + timedelta(milliseconds=400))

    await host.run_until_idle()
    assert greeter.greeted == ["Ada"]
    await host.advance(timedelta(milliseconds=200))
    assert greeter.greeted == ["Ada", "Grace"] and not greeter.done.is_set()
    await host.advance(timedelta(milliseconds=200))
    assert greeter.greeted == ["Ada", "Grace", "Linus"] and greeter.done.is_set()
    for run in host.executions:
        await host.assert_status(run.task_id, QueuedTaskStatus.COMPLETED)
    assert [e.started_at for e in host.executions] == [
        START + timedelta(milliseconds=ms) for ms in (0, 200, 400)
    ]


async def test_the_handler_uses_the_greeter_of_the_container(
    make_evertask_host: EverTaskHostFactory,
) -> None:
    container = Container()
    host = await make_evertask_host(container, configure)
    mine = Greeter()
    with host.override("greeter", mine):
        await host.dispatch(Greet(name="Margaret"))
        await host.run_until_idle()
    assert mine.greeted == ["Margaret"] and container.greeter().greeted == []
