"""The column types' fused SQLite bind processors equal the composed ones."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import CHAR
from sqlalchemy.dialects import sqlite

from evertask_storage_efcore_like.types import GuidType, UtcDateTime

DIALECT = sqlite.dialect()  # type: ignore[no-untyped-call]


def test_utc_datetime_text_is_what_sqlalchemy_would_write() -> None:
    fused = UtcDateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
    composed = sqlite.DATETIME().bind_processor(DIALECT)  # type: ignore[no-untyped-call]
    rng = random.Random(7)
    zones = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    for _ in range(2_000):
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
            seconds=rng.uniform(0, 4e9), microseconds=rng.choice([0, 1, 999_999])
        )
        value = moment.astimezone(rng.choice(zones))
        expected = composed(UtcDateTime().process_bind_param(value, DIALECT))
        assert fused(value) == expected
    assert fused(None) is None
    with pytest.raises(ValueError, match="Naive datetime"):
        fused(datetime(2026, 1, 1))


def test_guid_text_is_what_sqlalchemy_would_write() -> None:
    fused = GuidType().dialect_impl(DIALECT).bind_processor(DIALECT)
    plain = CHAR(36).bind_processor(DIALECT)
    assert plain is None  # CHAR adds nothing: the decorator's own conversion is all
    for _ in range(200):
        value = uuid.uuid4()
        assert fused(value) == GuidType().process_bind_param(value, DIALECT) == str(value)
    text = "6F9619FF-8B86-D011-B42D-00CF4FC964FF"
    assert fused(text) == str(uuid.UUID(text))
    assert fused(None) is None


def test_guid_text_stays_right_past_the_remembered_ones() -> None:
    from evertask_storage_efcore_like import types

    fused = GuidType().dialect_impl(DIALECT).bind_processor(DIALECT)
    values = [uuid.uuid4() for _ in range(types._TEXTS_MAX + 500)]
    for _ in range(2):  # the second pass finds some remembered, some formatted again
        for value in values:
            assert fused(value) == str(value)
            assert len(types._TEXTS) <= types._TEXTS_MAX
