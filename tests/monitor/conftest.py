from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from .harness import BACKENDS, Api, Built, Seeded, build_host, parent_app, require_backend, seed


class Monitored:
    """A started host with monitoring, an API client logged in, and (maybe) seeded rows."""

    def __init__(self, built: Built, api: Api, seeded: Seeded | None) -> None:
        self.built = built
        self.host = built.host
        self.storage: Any = built.host.storage
        self.api = api
        self.seeded = seeded
        self.kind = built.kind


async def _start(kind: str, directory: Path, seeded: bool, **kwargs: Any) -> Monitored:
    require_backend(kind)
    built = build_host(kind, directory, **kwargs)
    await built.host.start()
    try:
        data = await seed(built.host) if seeded else None
        api = Api(parent_app(built.host))
        await api.login()
    except BaseException:
        await built.close()
        raise
    return Monitored(built, api, data)


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=BACKENDS)
async def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Monitored]:
    """One host per backend with 15 seeded tasks, shared by a module's read-only tests."""
    monitored = await _start(request.param, tmp_path_factory.mktemp("seeded"), True)
    try:
        yield monitored
    finally:
        await monitored.api.aclose()
        await monitored.built.close()


@pytest_asyncio.fixture(params=BACKENDS)
async def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Monitored]:
    """A new empty host per test (for tests that change state)."""
    monitored = await _start(request.param, tmp_path, False)
    try:
        yield monitored
    finally:
        await monitored.api.aclose()
        await monitored.built.close()


@pytest_asyncio.fixture
async def memory(tmp_path: Path) -> AsyncIterator[Monitored]:
    """A new empty host on memory storage (security tests)."""
    monitored = await _start("memory", tmp_path, False)
    try:
        yield monitored
    finally:
        await monitored.api.aclose()
        await monitored.built.close()
