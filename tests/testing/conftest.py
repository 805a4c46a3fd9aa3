from __future__ import annotations

import pytest

from evertask.testing import EverTaskHostFactory, EverTaskTestHost
from tests.testing import app


@pytest.fixture
def container() -> app.Container:
    return app.Container()


@pytest.fixture
async def host(
    make_evertask_host: EverTaskHostFactory, container: app.Container
) -> EverTaskTestHost:
    return await make_evertask_host(
        container, app.configure, builder=lambda b: b.add_queue("reports")
    )
