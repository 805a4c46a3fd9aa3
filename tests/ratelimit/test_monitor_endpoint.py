"""``GET /ratelimits`` of the monitoring API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from evertask import ManualClock, MemoryTaskStorage
from evertask_abstractions import ConfigurationError
from evertask_monitor_api import MonitoringOptions, create_standalone_app
from tests.helpers import build_host, wait_until
from tests.monitor.harness import PASSWORD, SECRET, USERNAME, Api, parent_app
from tests.ratelimit.tasks import ALL, Call, Slow, SlowHandler

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


async def test_ratelimits_summarizes_keys_and_the_throttled_handlers() -> None:
    clock = ManualClock(T0)
    host, c = build_host(
        ALL,
        lambda o: o.use_clock(clock),
        builder=lambda b: b.add_monitoring_api(_monitor),
    )
    probe = c.probe()
    async with host:
        d = host.dispatcher
        calls = [await d.dispatch(Call(tenant="t", n=i)) for i in range(5)]
        other = [await d.dispatch(Call(tenant="u", n=i)) for i in range(3)]
        for i in range(3):
            await d.dispatch(Slow(n=i))
        await wait_until(lambda: host.rate_limiter.parked_task_count == 4)
        await probe.wait_for(lambda: probe.count("begin") == 2)
        await wait_until(lambda: host.rate_limiter.waiting_count(SlowHandler) == 1)
        api = Api(parent_app(host))
        try:
            await api.login()
            body = await api.json("/ratelimits", limit=0)
            parked = await api.json(f"/tasks/{calls[3]}")
            done = await api.json(f"/tasks/{calls[0]}")
        finally:
            await api.aclose()
            probe.gate("release").set()
    assert body["parked"] == [] and body["parkedTaskCount"] == 4
    keys = [(k["rateLimitKey"], k["parkedCount"]) for k in body["keys"]]
    assert keys == [("t", 3), ("u", 1)]
    t = body["keys"][0]
    assert datetime.fromisoformat(t["nextSlotUtc"]) == T0 + timedelta(seconds=30)
    assert datetime.fromisoformat(t["lastSlotUtc"]) == T0 + timedelta(seconds=90)
    assert t["shortType"] == "Call" and t["queueName"] == "default"
    assert datetime.fromisoformat(body["keys"][1]["nextSlotUtc"]) == T0 + timedelta(seconds=30)
    assert len(other) == 3
    handlers = {h["shortHandler"]: h for h in body["handlers"]}
    assert "QuickHandler" not in handlers  # declares neither
    call = handlers["CallHandler"]
    assert call["rateLimit"]["permits"] == 2 and call["rateLimit"]["periodMs"] == 60_000
    assert call["rateLimit"]["burst"] == 2
    assert call["rateLimit"]["overflowBehavior"] == "WAIT_FOR_CAPACITY"
    assert call["maxConcurrency"] is None and call["running"] is None
    assert call["waiting"] is None and call["parked"] == 4
    slow = handlers["SlowHandler"]
    assert slow["rateLimit"] is None and slow["maxConcurrency"] == 2
    assert (slow["running"], slow["waiting"], slow["parked"]) == (2, 1, 0)
    until = datetime.fromisoformat(parked["throttledUntil"])
    assert until == T0 + timedelta(seconds=60)
    assert done["status"] == "Completed" and done["throttledUntil"] is None


async def test_ratelimits_in_standalone_mode_is_not_available() -> None:
    storage = MemoryTaskStorage()
    options = MonitoringOptions().set_credentials(USERNAME, PASSWORD).set_jwt_secret(SECRET)
    options.set_docs_url("https://docs.example.com/evertask")
    app = create_standalone_app(storage, options)
    async with app.router.lifespan_context(app):
        api = Api(app)
        try:
            await api.login()
            body = await api.json("/ratelimits")
            config = await api.json("/config")
        finally:
            await api.aclose()
    assert config["docsUrl"] == "https://docs.example.com/evertask/"  # the dashboard's links
    assert body == {
        "available": False,
        "clusterWide": False,
        "parkedTaskCount": 0,
        "maxParkedTasks": 0,
        "trackedKeyCount": 0,
        "failOpenCount": 0,
        "parked": [],
        "keys": [],
        "handlers": [],
        "adaptive": {
            "enabled": False,
            "paused": False,
            "reason": None,
            "since": None,
            "cpu": None,
            "memoryBytes": None,
            "cpuThreshold": None,
            "memoryThresholdBytes": None,
            "pauses": 0,
        },
    }


def test_docs_url_must_be_an_http_url() -> None:
    with pytest.raises(ConfigurationError, match="docs_url"):
        MonitoringOptions(docs_url="docs/throttling.md").validate()
    assert MonitoringOptions(docs_url=" https://d.example/et/ ").validate().docs_url == (
        "https://d.example/et/"
    )
