"""The stored text of a task that failed after retries reads as the attempts of one task."""

from __future__ import annotations

import uuid
from datetime import timedelta

from evertask_abstractions import (
    CancellationToken,
    EverTask,
    EverTaskHandler,
    LinearRetryPolicy,
    QueuedTaskStatus,
)
from tests.helpers import Probe, build_host, wait_status


class Charge(EverTask):
    order: str
    own_chain: bool = False


def _charge_card(order: str, attempt: int) -> None:
    raise ValueError(f"card declined for {order} (try {attempt})")


def _lookup_rate(attempt: int) -> None:
    try:
        {}["rate"]
    except KeyError:
        raise RuntimeError(f"no rate (try {attempt})")  # noqa: B904 - the user's own chain


class ChargeHandler(EverTaskHandler[Charge]):
    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    async def handle(self, task: Charge, cancellation: CancellationToken) -> None:
        attempt = self.probe.count("attempt") + 1
        self.probe.record("attempt", attempt)
        if task.own_chain:
            _lookup_rate(attempt)
        _charge_card(task.order, attempt)

    async def on_error(
        self, task_id: uuid.UUID, exception: BaseException | None, message: str | None
    ) -> None:
        self.probe.record("on_error", exception)


async def _fail_three_times(own_chain: bool) -> tuple[str, BaseException]:
    policy = LinearRetryPolicy(2, timedelta(milliseconds=1))
    host, c = build_host([ChargeHandler], lambda o: o.set_default_retry_policy(policy))
    probe = c.probe()
    async with host:
        tid = await host.dispatcher.dispatch(Charge(order="A-1", own_chain=own_chain))
        await wait_status(host, tid, QueuedTaskStatus.FAILED)
        await probe.wait_for(lambda: probe.count("on_error") == 1)
        assert host.storage is not None
        row = await host.storage.get(tid)
    assert row is not None and row.exception is not None
    errors = [call[1] for call in probe.calls if call[0] == "on_error"]
    return row.exception, errors[0]


async def test_stored_text_lists_each_attempt_with_its_own_traceback() -> None:
    text, last = await _fail_three_times(own_chain=False)
    assert text.startswith("ValueError: card declined for A-1 (try 3)\nFailed after 3 attempts.")
    for n in (1, 2):
        assert text.count(f"Attempt {n} of 3: ValueError: card declined for A-1 (try {n})") == 1
    assert text.count("Attempt 3 of 3 (final): ValueError: card declined for A-1 (try 3)") == 1
    assert text.count("Attempt ") == 3
    assert text.index("Attempt 1 of 3") < text.index("Attempt 2 of 3") < text.index("Attempt 3")
    assert "During handling of the above exception" not in text
    assert text.count("Traceback (most recent call last)") == 3
    assert text.count("in _charge_card") == 3  # the user's frames, in every attempt
    # on_error gets the last real exception, not chained to the earlier attempts
    assert isinstance(last, ValueError) and str(last) == "card declined for A-1 (try 3)"
    assert last.__context__ is None and last.__cause__ is None


async def test_an_attempts_own_exception_chain_is_kept() -> None:
    text, last = await _fail_three_times(own_chain=True)
    assert text.count("During handling of the above exception") == 3  # the user's, per attempt
    assert text.count("KeyError: 'rate'") == 3
    assert "Attempt 3 of 3 (final): RuntimeError: no rate (try 3)" in text
    assert isinstance(last.__context__, KeyError)  # the user's own context survives
    section = text[text.index("Attempt 2 of 3") : text.index("Attempt 3 of 3")]
    assert "try 1" not in section and "try 3" not in section
