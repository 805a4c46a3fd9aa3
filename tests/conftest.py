from __future__ import annotations

import logging

import pytest

import evertask.testing.pytest_plugin

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    # The evertask plugin comes from its pytest11 entry point once the package is installed;
    # an install older than the entry point (or plugin autoloading switched off) gets it
    # here, under the entry point's name, so it is never registered twice.
    manager = config.pluginmanager
    if not manager.has_plugin("evertask") and not manager.is_registered(
        evertask.testing.pytest_plugin
    ):
        manager.register(evertask.testing.pytest_plugin, "evertask")


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="evertask")
