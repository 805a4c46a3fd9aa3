"""Payloads that JSON cannot hold are refused at dispatch, never stored as something else."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from evertask import add_evertask
from evertask.registry import dump_task
from evertask_abstractions import (
    CancellationToken,
    EverTask,
    EverTaskHandler,
    QueuedTaskStatus,
    TaskSerializationError,
)
from tests.helpers import Container, wait_status

NAN = float("nan")
INF = float("inf")


class Reading(BaseModel):
    value: float


class Measure(EverTask):
    value: float = 0.0
    series: list[float] = []
    extra: dict[str, Any] = {}
    reading: Reading | None = None
    note: str | None = None
    exact: Annotated[Decimal, Field(allow_inf_nan=True)] | None = None


class MeasureHandler(EverTaskHandler[Measure]):
    async def handle(self, task: Measure, cancellation: CancellationToken) -> None:
        pass


REFUSED = [
    (Measure(value=NAN), "'value'"),
    (Measure(value=INF), "'value'"),
    (Measure(value=-INF), "'value'"),
    (Measure(series=[1.0, INF]), "'series[1]'"),
    (Measure(extra={"k": [0.5, NAN]}), "\"extra['k'][1]\""),
    (Measure(reading=Reading(value=NAN)), "'reading.value'"),
]


@pytest.mark.parametrize(("task", "path"), REFUSED)
def test_dump_task_refuses_nan_and_infinity_naming_the_field_and_the_fix(
    task: Measure, path: str
) -> None:
    with pytest.raises(TaskSerializationError) as caught:
        dump_task(task)
    message = str(caught.value)
    assert f"field {path}" in message, message
    assert "Measure" in message and "None" in message and "Decimal" in message


def test_dump_task_keeps_finite_floats_nulls_and_decimal_nan_unchanged() -> None:
    task = Measure(value=1.5, series=[2.0], extra={"x": None}, note=None, exact=Decimal("NaN"))
    text = dump_task(task)
    assert json.loads(text)["note"] is None
    back = Measure.model_validate_json(text)
    assert back.value == 1.5 and back.extra == {"x": None}
    assert back.exact is not None and back.exact.is_nan()  # lossless as a string


@pytest.mark.parametrize(("task", "path"), REFUSED)
async def test_dispatch_refuses_nan_and_infinity_and_persists_nothing(
    tmp_path: Path, task: Measure, path: str
) -> None:
    host = (
        add_evertask(Container(), lambda o: o.register_handler(MeasureHandler))
        .add_sqlite_storage(str(tmp_path / "t.db"))
        .build()
    )
    async with host:
        with pytest.raises(TaskSerializationError, match="NaN or infinity"):
            await host.dispatcher.dispatch(task)
        assert host.storage is not None
        assert sum((await host.storage.count_by_status()).values()) == 0
        ok = await host.dispatcher.dispatch(Measure(value=2.0))  # the host keeps working
        await wait_status(host, ok, QueuedTaskStatus.COMPLETED)
