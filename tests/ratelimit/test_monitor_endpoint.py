"""``GET /ratelimits`` of the monitoring API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from evertask import ManualClock
from tests.helpers import build_host, wait_until
from tests.monitor.harness import PASSWORD, SECRET, USERNAME, Api, parent_app
from tests.ratelimit.tasks import ALL, Call

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _monitor(options: Any) -> None:
    options.set_credentials(USERNAME, PASSWORD)
    options.set_jwt_secret(SECRET)


async def test_ratelimits_lists_the_parked_runs_and_the_counters() -> None:
    clock = ManualClock(T0)
    host, _ = build_host(
        ALL,
        lambda o: o.use_clock(clock),
        builder=lambda b: b.add_monitoring_api(_monitor),
    )
    async with host:
        ids = [await host.dispatcher.dispatch(Call(tenant="t", n=i)) for i in range(4)]
        await wait_until(lambda: host.rate_limiter.parked_task_count == 2)
        api = Api(parent_app(host))
        try:
            assert (await api.get("/ratelimits")).status_code == 401
            await api.login()
            body = await api.json("/ratelimits")
            short = await api.json("/ratelimits", limit=1)
        finally:
            await api.aclose()
    assert body["available"] is True
    assert body["parkedTaskCount"] == 2 and body["trackedKeyCount"] == 1
    assert body["failOpenCount"] == 0 and body["maxParkedTasks"] > 0
    assert [p["taskId"] for p in body["parked"]] == [str(ids[2]), str(ids[3])]
    first = body["parked"][0]
    assert first["rateLimitKey"] == "t" and first["queueName"] == "default"
    assert datetime.fromisoformat(first["untilUtc"]) == T0 + timedelta(seconds=30)
    assert len(short["parked"]) == 1 and short["parkedTaskCount"] == 2
