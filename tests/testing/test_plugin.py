"""The pytest plugin, in fresh pytest runs (pytester): its fixtures in strict mode, the
host stopped after each test, and a clear error when the application is not configured."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

PLUGIN = "evertask.testing.pytest_plugin"

TESTS = """
from datetime import timedelta

import pytest
from dependency_injector import containers, providers

from evertask.testing import EverTaskTestHost
from evertask_abstractions import CancellationToken, EverTask, EverTaskHandler


class Ping(EverTask):
    n: int


class Seen:
    def __init__(self) -> None:
        self.values: list[int] = []


class PingHandler(EverTaskHandler[Ping]):
    def __init__(self, seen: Seen) -> None:
        super().__init__()
        self.seen = seen

    async def handle(self, task: Ping, cancellation: CancellationToken) -> None:
        self.seen.values.append(task.n)


class Container(containers.DeclarativeContainer):
    seen = providers.Singleton(Seen)


@pytest.fixture
def evertask_container():
    return Container()


@pytest.fixture
def evertask_configure():
    return lambda options: options.register_handler(PingHandler)


HOSTS = []


@pytest.mark.asyncio
async def test_the_host_fixture(evertask_host: EverTaskTestHost, evertask_container) -> None:
    HOSTS.append(evertask_host)
    await evertask_host.dispatch(Ping(n=1), timedelta(seconds=5))
    await evertask_host.advance(timedelta(seconds=5))
    assert evertask_container.seen().values == [1]
    evertask_host.assert_dispatched(Ping, count=1)


def test_the_host_was_stopped_after_its_test() -> None:
    assert [h.host.state.value for h in HOSTS] == ["stopped"]


@pytest.mark.asyncio
async def test_the_factory_and_the_clock(make_evertask_host, evertask_clock) -> None:
    container = Container()
    host = await make_evertask_host(container, lambda o: o.register_handler(PingHandler))
    assert host.clock is evertask_clock and host.host.is_running
    await host.dispatch(Ping(n=2))
    await host.run_until_idle()
    assert container.seen().values == [2]
"""


def _entry_point_installed() -> bool:
    return any(
        ep.name == "evertask" and ep.value == PLUGIN for ep in entry_points(group="pytest11")
    )


def plugin_args() -> list[str]:
    """Where the entry point is installed, pytest loads the plugin by itself; in an
    install older than the entry point, it is named on the command line."""
    return [] if _entry_point_installed() else ["-p", PLUGIN]


@pytest.fixture
def strict(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    return pytester


def test_the_fixtures_work_in_strict_mode_and_stop_their_hosts(strict: pytest.Pytester) -> None:
    strict.makepyfile(test_app=TESTS)
    result = strict.runpytest(*plugin_args(), "-p", "no:randomly")
    result.assert_outcomes(passed=3)


def test_the_host_fixture_asks_for_the_application_s_configuration(
    strict: pytest.Pytester,
) -> None:
    strict.makepyfile(
        test_unconfigured="""
        import pytest

        @pytest.mark.asyncio
        async def test_it(evertask_host):
            pass
        """
    )
    result = strict.runpytest(*plugin_args())
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*define an `evertask_configure` fixture*"])


def test_a_run_without_the_plugin_s_fixtures_is_untouched(strict: pytest.Pytester) -> None:
    strict.makepyfile(test_plain="def test_plain():\n    assert True\n")
    strict.runpytest(*plugin_args()).assert_outcomes(passed=1)


def test_the_entry_point_loads_the_plugin_and_no_evertask_turns_it_off(
    strict: pytest.Pytester,
) -> None:
    if not _entry_point_installed():
        pytest.skip("the evertask pytest11 entry point is not installed (reinstall the package)")
    strict.makepyfile(
        test_fixture="def test_it(evertask_clock):\n    assert evertask_clock.now().year == 2026\n"
    )
    strict.runpytest().assert_outcomes(passed=1)
    off = strict.runpytest("-p", "no:evertask")
    off.assert_outcomes(errors=1)
    off.stdout.fnmatch_lines(["*fixture 'evertask_clock' not found*"])
