"""host.override: one dependency of the container replaced for a test, then restored."""

from __future__ import annotations

import pytest
from dependency_injector import containers, providers

from evertask.testing import EverTaskHostFactory, EverTaskTestHost
from tests.testing import app


async def test_an_override_reaches_the_handlers_and_is_restored_after_the_block(
    host: EverTaskTestHost, container: app.Container
) -> None:
    real = container.mailer()
    fake = app.FakeMailer()
    with host.override("mailer", fake) as given:
        assert given is fake and container.mailer() is fake
        await host.dispatch(app.SendEmail(to="a@x"))
        await host.run_until_idle()
    assert fake.sent == [("a@x", "hello")] and real.sent == []
    assert container.mailer() is real
    await host.dispatch(app.SendEmail(to="b@x"))
    await host.run_until_idle()
    assert real.sent == [("b@x", "hello")] and fake.sent == [("a@x", "hello")]


async def test_a_provider_can_be_overridden_by_a_provider(
    host: EverTaskTestHost, container: app.Container
) -> None:
    made: list[app.FakeMailer] = []

    def make() -> app.FakeMailer:
        made.append(app.FakeMailer())
        return made[-1]

    with host.override(container.mailer, providers.Factory(make)):
        await host.dispatch(app.SendEmail(to="a@x"))
        await host.dispatch(app.SendEmail(to="b@x"))
        await host.run_until_idle()
    assert [m.sent for m in made] == [[("a@x", "hello")], [("b@x", "hello")]]


async def test_overrides_reset_in_any_order_and_at_stop(
    make_evertask_host: EverTaskHostFactory,
) -> None:
    container = app.Container()
    real = container.mailer()
    host = await make_evertask_host(container, app.configure)
    first, second = app.FakeMailer(), app.FakeMailer()
    outer = host.override("mailer", first)
    inner = host.override("mailer", second)
    assert container.mailer() is second
    outer.reset()  # out of order: the later override stays in force
    assert container.mailer() is second
    outer.reset()  # idempotent
    assert container.mailer() is second
    lasting = host.override("journal", app.Journal())
    await host.stop()
    assert container.mailer() is real and not inner.active and not lasting.active
    assert isinstance(container.journal(), app.Journal) and container.journal() is not lasting.value


class Inner(containers.DeclarativeContainer):
    mailer = providers.Singleton(app.Mailer)


class Outer(containers.DeclarativeContainer):
    journal = providers.Singleton(app.Journal)
    services = providers.Container(Inner)


async def test_a_dotted_name_reaches_a_nested_container(
    make_evertask_host: EverTaskHostFactory,
) -> None:
    container = Outer()
    host = await make_evertask_host(container, app.configure)
    fake = app.FakeMailer()
    with host.override("services.mailer", fake):
        await host.dispatch(app.SendEmail(to="a@x"))
        await host.run_until_idle()
    assert fake.sent == [("a@x", "hello")]
    assert isinstance(container.services.mailer(), app.Mailer)
    assert container.services.mailer() is not fake


async def test_unknown_names_are_refused_with_the_container_s_providers(
    host: EverTaskTestHost,
) -> None:
    with pytest.raises(LookupError) as failure:
        host.override("emailer", object())
    assert "no provider named 'emailer'" in str(failure.value)
    assert "journal, mailer" in str(failure.value)
    with pytest.raises(LookupError, match="no provider named 'mailer.send'"):
        host.override("mailer.send", object())
    with pytest.raises(TypeError, match="provider or a provider's name"):
        host.override(42, object())
