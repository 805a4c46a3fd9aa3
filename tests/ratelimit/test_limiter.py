"""The in-memory GCRA limiter on its own: conformance, reservations, rejections, limits."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evertask.ratelimit import (
    PROCEED,
    InMemoryKeyedRateLimiter,
    RateLimitOutcome,
)
from evertask_abstractions import (
    ConfigurationError,
    RateLimitOverflowBehavior,
    RateLimitPolicy,
    RateLimitRejectedError,
)

T0 = 1_800_000_000.0


def _ids(n: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(n)]


def test_a_burst_then_the_sustained_rate() -> None:
    limiter = InMemoryKeyedRateLimiter()
    policy = RateLimitPolicy(2, timedelta(seconds=10), burst=3)  # T = 5 s, tau = 10 s
    decisions = [limiter.acquire("t", "k", i, policy, T0) for i in _ids(5)]
    assert decisions[:3] == [PROCEED] * 3
    assert [d.outcome for d in decisions[3:]] == [RateLimitOutcome.DEFER] * 2
    assert [d.slot for d in decisions[3:]] == [T0 + 5, T0 + 10]


def test_a_reservation_is_idempotent_per_task_id_and_redeemed_at_its_slot() -> None:
    limiter = InMemoryKeyedRateLimiter()
    policy = RateLimitPolicy(1, timedelta(seconds=60))
    first, second, third = _ids(3)
    assert limiter.acquire("t", "k", first, policy, T0) is PROCEED
    deferred = limiter.acquire("t", "k", second, policy, T0)
    assert deferred.outcome is RateLimitOutcome.DEFER and deferred.slot == T0 + 60
    # asking again (a redelivery) gets the same slot and books nothing more
    assert limiter.acquire("t", "k", second, policy, T0 + 1).slot == T0 + 60
    assert limiter.reserved_slot(second) == T0 + 60
    assert limiter.acquire("t", "k", third, policy, T0 + 2).slot == T0 + 120
    assert limiter.acquire("t", "k", second, policy, T0 + 60) is PROCEED
    assert limiter.reserved_slot(second) is None


def test_keys_and_task_types_have_separate_budgets() -> None:
    limiter = InMemoryKeyedRateLimiter()
    policy = RateLimitPolicy(1, timedelta(seconds=60))
    assert limiter.acquire("t", "a", uuid.uuid4(), policy, T0) is PROCEED
    assert limiter.acquire("t", "b", uuid.uuid4(), policy, T0) is PROCEED
    assert limiter.acquire("u", "a", uuid.uuid4(), policy, T0) is PROCEED
    assert limiter.acquire("t", "a", uuid.uuid4(), policy, T0).outcome is RateLimitOutcome.DEFER
    assert limiter.tracked_key_count == 3


def test_a_slot_beyond_the_horizon_is_rejected_and_not_booked() -> None:
    limiter = InMemoryKeyedRateLimiter()
    policy = RateLimitPolicy(1, timedelta(minutes=30), max_reservation_horizon=timedelta(hours=1))
    a, b, c, d = _ids(4)
    assert limiter.acquire("t", "k", a, policy, T0) is PROCEED
    assert limiter.acquire("t", "k", b, policy, T0).slot == T0 + 1800
    assert limiter.acquire("t", "k", c, policy, T0).slot == T0 + 3600  # exactly the horizon
    rejected = limiter.acquire("t", "k", d, policy, T0)
    assert rejected.outcome is RateLimitOutcome.REJECT and rejected.reason == "horizon"
    assert rejected.slot == T0 + 5400
    assert limiter.reserved_slot(d) is None
    # nothing was booked: once the horizon moves, the next one gets the same slot
    assert limiter.acquire("t", "k", d, policy, T0 + 1800).slot == T0 + 5400


def test_discard_rejects_instead_of_reserving() -> None:
    limiter = InMemoryKeyedRateLimiter()
    policy = RateLimitPolicy(
        1, timedelta(seconds=60), overflow_behavior=RateLimitOverflowBehavior.DISCARD
    )
    assert limiter.acquire("t", "k", uuid.uuid4(), policy, T0) is PROCEED
    rejected = limiter.acquire("t", "k", uuid.uuid4(), policy, T0 + 30)
    assert rejected.outcome is RateLimitOutcome.REJECT and rejected.reason == "discard"
    assert limiter.acquire("t", "k", uuid.uuid4(), policy, T0 + 60) is PROCEED


def test_a_slot_at_or_after_not_after_is_rejected() -> None:
    limiter = InMemoryKeyedRateLimiter()
    policy = RateLimitPolicy(1, timedelta(seconds=60))
    assert limiter.acquire("t", "k", uuid.uuid4(), policy, T0) is PROCEED
    rejected = limiter.acquire("t", "k", uuid.uuid4(), policy, T0, not_after=T0 + 60)
    assert rejected.outcome is RateLimitOutcome.REJECT and rejected.reason == "deadline"
    assert limiter.acquire("t", "k", uuid.uuid4(), policy, T0, not_after=T0 + 61).slot == T0 + 60


def test_start_empty_makes_the_first_start_wait_one_emission_interval() -> None:
    limiter = InMemoryKeyedRateLimiter()
    policy = RateLimitPolicy(4, timedelta(minutes=1), start_empty=True)  # T = 15 s
    first = limiter.acquire("t", "k", uuid.uuid4(), policy, T0)
    assert first.outcome is RateLimitOutcome.DEFER and first.slot == T0 + 15
    # ...then the bucket fills at the sustained rate: 4 tokens after a minute
    ids = _ids(4)
    assert [limiter.acquire("t", "k", i, policy, T0 + 75).outcome for i in ids] == [
        RateLimitOutcome.PROCEED
    ] * 4


def test_beyond_max_tracked_keys_new_keys_fail_open_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = InMemoryKeyedRateLimiter(max_tracked_keys=2)
    policy = RateLimitPolicy(1, timedelta(hours=1))
    for key in ("a", "b"):
        assert limiter.acquire("t", key, uuid.uuid4(), policy, T0) is PROCEED
    for _ in range(5):  # key "c" is never tracked: never limited
        assert limiter.acquire("t", "c", uuid.uuid4(), policy, T0 + 1) is PROCEED
    assert limiter.fail_open_count == 5 and limiter.tracked_key_count == 2
    warnings = [r for r in caplog.records if "max_tracked_keys" in r.getMessage()]
    assert len(warnings) == 1
    # tracked keys stay limited
    assert limiter.acquire("t", "a", uuid.uuid4(), policy, T0 + 1).outcome is (
        RateLimitOutcome.DEFER
    )


def test_idle_keys_and_expired_reservations_are_swept() -> None:
    limiter = InMemoryKeyedRateLimiter()
    policy = RateLimitPolicy(1, timedelta(seconds=60))
    lost = uuid.uuid4()
    assert limiter.acquire("t", "k", uuid.uuid4(), policy, T0) is PROCEED
    assert limiter.acquire("t", "k", lost, policy, T0).outcome is RateLimitOutcome.DEFER
    assert limiter.reservation_count == 1
    # 5 minutes later (the sweep interval) the key is full again and the reservation of a
    # task that never came back has expired
    assert limiter.acquire("t", "other", uuid.uuid4(), policy, T0 + 301) is PROCEED
    assert limiter.tracked_key_count == 1 and limiter.reservation_count == 0


@settings(max_examples=200, deadline=None)
@given(
    permits=st.integers(1, 6),
    period=st.integers(1, 120),
    burst=st.integers(1, 8),
    gaps=st.lists(st.floats(0, 30, allow_nan=False), min_size=1, max_size=60),
)
def test_starts_in_any_window_never_exceed_burst_plus_the_rate(
    permits: int, period: int, burst: int, gaps: list[float]
) -> None:
    """Arrivals at any times; a deferred task starts at its slot: in every window of
    length ``w`` there are at most ``burst + permits * w / period`` starts."""
    limiter = InMemoryKeyedRateLimiter()
    policy = RateLimitPolicy(
        permits, timedelta(seconds=period), burst=burst, max_reservation_horizon=1e9
    )
    now = T0
    starts: list[float] = []
    for gap in gaps:
        now += gap
        tid = uuid.uuid4()
        decision = limiter.acquire("t", "k", tid, policy, now)
        if decision is PROCEED:
            starts.append(now)
        else:
            assert decision.outcome is RateLimitOutcome.DEFER and decision.slot is not None
            assert decision.slot > now
            # the parked task comes back at its slot and redeems it
            assert limiter.acquire("t", "k", tid, policy, decision.slot) is PROCEED
            starts.append(decision.slot)
    starts.sort()
    for i, first in enumerate(starts):
        for j in range(i, len(starts)):
            window = starts[j] - first
            assert j - i + 1 <= burst + permits * window / period + 1e-6


def test_policy_arguments_are_validated_with_clear_errors() -> None:
    with pytest.raises(ConfigurationError, match="permits must be an integer >= 1"):
        RateLimitPolicy(0, timedelta(seconds=1))
    with pytest.raises(ConfigurationError, match="period must be positive"):
        RateLimitPolicy(1, timedelta(0))
    with pytest.raises(ConfigurationError, match="burst"):
        RateLimitPolicy(1, 1.0, burst=0)
    with pytest.raises(ConfigurationError, match="max_reservation_horizon"):
        RateLimitPolicy(1, 1.0, max_reservation_horizon=-1)
    with pytest.raises(ConfigurationError, match="overflow_behavior"):
        RateLimitPolicy(1, 1.0, overflow_behavior="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="period must be a timedelta"):
        RateLimitPolicy(1, "1s")  # type: ignore[arg-type]
    policy = RateLimitPolicy(3, timedelta(seconds=3), burst=5)
    assert policy.emission_interval == timedelta(seconds=1)
    assert policy.tolerance == timedelta(seconds=4)
    assert policy == RateLimitPolicy(3, 3.0, burst=5) and "burst=5" in repr(policy)


def test_the_rejection_error_carries_key_slot_and_policy() -> None:
    import pickle
    from datetime import UTC, datetime

    policy = RateLimitPolicy(1, timedelta(hours=1))
    slot = datetime(2026, 1, 1, tzinfo=UTC)
    error = RateLimitRejectedError("tenant-1", slot, policy)
    assert error.key == "tenant-1" and error.slot == slot and error.policy is policy
    assert "tenant-1" in str(error) and "max_reservation_horizon" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert copy.key == "tenant-1" and copy.policy == policy
