"""TTL normalisation: every row of the TTL table (docs/architecture.md#ttl) at the core level."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from tsot import ConfigurationError
from tsot.ttl import EXPIRED, FOREVER_SECONDS, from_ms, to_ms


@pytest.mark.parametrize(
    ("ttl", "expected"),
    [
        (None, None),
        (math.inf, None),
        (0, EXPIRED),
        (-1, EXPIRED),
        (-0.001, EXPIRED),
        (0.0, EXPIRED),
        (-math.inf, EXPIRED),
        (timedelta(0), EXPIRED),
        (timedelta(seconds=-5), EXPIRED),
        (1, 1000),
        (300, 300_000),
        (1.5, 1500),
        (0.0001, 1),  # tiny positive TTLs round up, never to "already expired"
        (0.0015, 2),
        (timedelta(minutes=2), 120_000),
        (timedelta(days=40), 40 * 86_400_000),
        (10**9, 10**12),
        (10**12, None),  # a hundred years or more: never expires
        (1e300, None),
        (timedelta(days=365 * 200), None),
    ],
)
def test_to_ms(ttl: object, expected: int | None) -> None:
    assert to_ms(ttl) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [math.nan, "10", True, False, [1], object()])
def test_to_ms_rejects(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="ttl"):
        to_ms(bad)  # type: ignore[arg-type]


def test_from_ms() -> None:
    assert from_ms(None) is None
    assert from_ms(1500) == 1.5


def test_forever_boundary() -> None:
    assert to_ms(FOREVER_SECONDS - 1) == (FOREVER_SECONDS - 1) * 1000
    assert to_ms(FOREVER_SECONDS) is None
