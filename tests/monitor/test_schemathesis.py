"""Property-based run over the OpenAPI schema: no 5xx, responses match the schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from evertask import EverTaskHost  # noqa: E402
from evertask_abstractions import Workflow  # noqa: E402

from . import tasks  # noqa: E402
from .harness import (  # noqa: E402
    API,
    PASSWORD,
    USERNAME,
    Built,
    ThreadedServer,
    build_host,
    seed,
    wait_for,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _throttled(options: Any) -> None:
    options.register_handler(*tasks.THROTTLED)


async def _seed(host: EverTaskHost) -> None:
    """The seeded rows, plus rate-limited tasks parked on two keys (``/ratelimits``), a
    finished batch and a failed saga with its compensations (``/batches``)."""
    await seed(host)
    d = host.dispatcher
    batch = await d.dispatch_batch([tasks.Stage(name="a", value=1), tasks.Stage(name="b")])
    await d.dispatch(tasks.Stage(name="after"), after=batch)
    saga = await d.dispatch_workflow(
        Workflow("fuzzed")
        .then(tasks.Stage(name="one"), compensate=tasks.Undo(name="one"))
        .group(tasks.Stage(name="two"), tasks.Stage(name="three"))
        .then(tasks.Stage(name="four", fail=True))
    )

    async def settled() -> bool:
        records = await d.get_batch(batch), await d.get_batch(saga)
        return all(r.finished for r in records)

    await wait_for(settled)
    for tenant in ("acme", "acme", "acme", "globex", "globex"):
        await host.dispatcher.dispatch(tasks.Limited(tenant=tenant))
    await wait_for(lambda: host.rate_limiter.parked_task_count == 3)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    directory = tmp_path_factory.mktemp("fuzz")

    def make() -> Built:
        return build_host("sqlite", directory, options=_throttled)

    server = ThreadedServer(make, _seed).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def token(live_server: ThreadedServer) -> str:
    response = httpx.post(
        f"{live_server.url}{API}/auth/login", json={"username": USERNAME, "password": PASSWORD}
    )
    response.raise_for_status()
    return str(response.json()["token"])


SETTINGS = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


def test_api_matches_its_schema(live_server: ThreadedServer, token: str) -> None:
    """At most 20 generated requests per operation; every response is checked."""
    schema = schemathesis.openapi.from_url(f"{live_server.url}{API}/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @SETTINGS
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()
        tested.append(operation.label)
    assert len(tested) >= 24, tested
