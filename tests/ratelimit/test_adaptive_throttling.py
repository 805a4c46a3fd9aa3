"""Adaptive throttling: a node pauses while its process is over a threshold and resumes
below ``resume_ratio`` times it; with an injected probe (no CPU is burnt)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from evertask.adaptive import ProcessResourceProbe, ResourceSample
from evertask.events import EventKind, TaskEvent
from evertask.telemetry.metrics import TaskMetrics
from evertask.telemetry.names import METRIC_THROTTLED
from evertask_abstractions import ConfigurationError, QueuedTaskStatus
from tests.helpers import build_host, wait_status, wait_until
from tests.monitor.harness import PASSWORD, SECRET, USERNAME, Api, parent_app
from tests.ratelimit.tasks import ALL, Quick

S = QueuedTaskStatus
GIB = 1 << 30


class FakeProbe:
    def __init__(self) -> None:
        self.value = ResourceSample(cpu=0.1, memory_bytes=GIB // 4)
        self.samples = 0

    def sample(self) -> ResourceSample:
        self.samples += 1
        return self.value


def _host(probe: FakeProbe, interval: float = 3600.0, **extra: Any) -> tuple[Any, Any]:
    def configure(o: Any) -> Any:
        return o.configure_adaptive_throttling(
            lambda a: (
                a.set_cpu_threshold(0.85)
                .set_memory_threshold_bytes(GIB)
                .set_check_interval(timedelta(seconds=interval))
                .use_probe(probe)
            )
        )

    return build_host(ALL, configure, **extra)


async def test_a_node_over_a_threshold_pauses_and_resumes_below_the_hysteresis() -> None:
    probe = FakeProbe()
    host, _ = _host(probe)
    events: list[TaskEvent] = []
    async with host:
        host.subscribe(events.append)
        throttle = host.adaptive_throttling
        assert throttle is not None and not throttle.check()
        first = await host.dispatcher.dispatch(Quick(n=0))
        await wait_status(host, first, S.COMPLETED)

        probe.value = ResourceSample(cpu=0.95, memory_bytes=GIB // 4)
        assert throttle.check()  # over the CPU threshold: paused
        state = throttle.state
        assert state.paused and state.reason == "cpu" and state.pauses == 1
        held = await host.dispatcher.dispatch(Quick(n=1))  # accepted, persisted, not run
        assert (await host.storage.get(held)).status is S.QUEUED  # type: ignore[union-attr]
        probe.value = ResourceSample(cpu=0.80, memory_bytes=GIB + 1)  # under cpu, over memory
        assert throttle.check() and throttle.state.reason == "memory"
        probe.value = ResourceSample(cpu=0.80, memory_bytes=GIB // 2)  # below, not by 10 %
        assert throttle.check()
        row = await host.storage.get(held)
        assert row is not None and row.status is S.QUEUED
        probe.value = ResourceSample(cpu=0.5, memory_bytes=GIB // 2)
        assert not throttle.check()  # below 90 % of each threshold: resumed
        await wait_status(host, held, S.COMPLETED)
        await wait_until(lambda: len([e for e in events if e.kind.name.startswith("NODE")]) == 2)
    kinds = [e.kind for e in events if e.kind in (EventKind.NODE_THROTTLED, EventKind.NODE_RESUMED)]
    assert kinds == [EventKind.NODE_THROTTLED, EventKind.NODE_RESUMED]
    paused = next(e for e in events if e.kind is EventKind.NODE_THROTTLED)
    assert paused.task_id == host.node_id and paused.extra["reason"] == "cpu"


async def test_the_host_samples_every_check_interval() -> None:
    probe = FakeProbe()
    probe.value = ResourceSample(cpu=2.0, memory_bytes=1)
    host, _ = _host(probe, interval=0.02)
    async with host:
        await wait_until(lambda: probe.samples >= 2)
        throttle = host.adaptive_throttling
        assert throttle is not None and throttle.paused
        probe.value = ResourceSample(cpu=0.0, memory_bytes=1)
        await wait_until(lambda: not throttle.paused)
    assert host.adaptive_throttling is not None and not host.adaptive_throttling.paused


async def test_the_state_is_served_and_measured() -> None:
    probe = FakeProbe()

    def monitor(options: Any) -> None:
        options.set_credentials(USERNAME, PASSWORD)
        options.set_jwt_secret(SECRET)

    host, _ = _host(probe, builder=lambda b: b.add_monitoring_api(monitor))
    reader = InMemoryMetricReader()
    metrics = TaskMetrics.for_provider(MeterProvider(metric_readers=[reader]))
    async with host:
        metrics.watch(host)
        throttle = host.adaptive_throttling
        assert throttle is not None
        probe.value = ResourceSample(cpu=0.2, memory_bytes=2 * GIB)
        throttle.check()
        api = Api(parent_app(host))
        try:
            await api.login()
            body = await api.json("/ratelimits")
        finally:
            await api.aclose()
        data = reader.get_metrics_data()
    adaptive = body["adaptive"]
    assert adaptive["enabled"] is True and adaptive["paused"] is True
    assert adaptive["reason"] == "memory" and adaptive["memoryBytes"] == 2 * GIB
    assert adaptive["cpuThreshold"] == 0.85 and adaptive["memoryThresholdBytes"] == GIB
    assert body["clusterWide"] is False  # (a memory storage: budgets per host)
    points = [
        p.value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == METRIC_THROTTLED
        for p in m.data.data_points
    ]
    assert points == [1]


def test_the_default_probe_reads_this_process() -> None:
    probe = ProcessResourceProbe()
    sum(i * i for i in range(200_000))
    sample = probe.sample()
    assert sample.cpu >= 0 and sample.memory_bytes > 1 << 20


def test_options_are_validated() -> None:
    from evertask.options import AdaptiveThrottlingOptions

    options = AdaptiveThrottlingOptions()
    assert not options.enabled
    for bad in (
        lambda: options.set_cpu_threshold(0),
        lambda: options.set_memory_threshold_bytes(0),
        lambda: options.set_resume_ratio(1.5),
        lambda: options.set_check_interval(0),
        lambda: options.use_probe(object()),  # type: ignore[arg-type]
    ):
        with pytest.raises(ConfigurationError):
            bad()
    assert options.set_memory_threshold_bytes(GIB).enabled
