"""``python -m benchmarks observability --only PART`` measures "off" and that part only."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks import observability as ob
from benchmarks.__main__ import main


def test_only_logcapture_measures_off_and_the_two_log_capture_configurations(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    measured: list[str] = []
    per_s = {"off": 40_000.0, "logcapture": 38_000.0, "logcapture_persisted": 32_000.0}

    def measure(name: str, n: int) -> ob.Rates:
        measured.append(name)
        return ob.Rates(per_s[name], per_s[name])

    monkeypatch.setattr(ob, "measure", measure)
    results = ob.run(quick=True, only="logcapture")
    assert measured == ["off", "logcapture", "logcapture_persisted"]
    assert results["logcapture_persisted_ratio_to_off"] == 0.8
    assert results["logcapture_ratio_to_off"] == 0.95
    assert not any(key.startswith(("otel", "sdk_floor")) for key in results)
    assert "--only logcapture" in capsys.readouterr().out


def test_only_takes_a_part_of_the_suite() -> None:
    with pytest.raises(SystemExit):
        main(["observability", "--only", "nope"])
    with pytest.raises(SystemExit):
        main(["engine", "--only", "logcapture"])
    assert set(ob.PARTS) == {"otel", "logcapture"}
    assert all(name in ob.MEASURED for part in ob.PARTS.values() for name in part)


def test_the_metrics_only_floor_observer_records_two_values_per_task_and_no_span() -> None:
    n = 40
    otel = ob.Otel(n)
    observer = ob.FloorObserver(ob.Floor(otel, tracing=False))

    def setup(builder: ob.EverTaskServiceBuilder) -> None:
        builder.on_build(lambda host: host.add_observer(observer))

    asyncio.run(ob.throughput(n, ob.NoopHandler, ob.noop, setup=setup))
    data = otel.reader.get_metrics_data()
    assert data is not None
    counts = [
        point.count
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
        if hasattr(point, "bucket_counts")
    ]
    assert sum(counts) == 2 * n  # queue wait and duration, once per task
    assert otel.close() == 0  # no span at all
