"""Fixtures for every suite. Server fixtures live in tests/servers/ and are loaded here."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# The contract registry imports tests/servers/* before pytest loads them as plugins: register
# them for assertion rewriting first, or pytest warns (an error under filterwarnings=error).
pytest.register_assert_rewrite("tests.servers", "tests.contract")

from tests.contract.registry import Target  # noqa: E402
from tests.helpers import FakeClock, LoopThread  # noqa: E402

pytest_plugins = [
    f"tests.servers.{p.stem}"
    for p in sorted((Path(__file__).parent / "servers").glob("*.py"))
    if p.stem not in ("__init__", "proc")
]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def memory_target(clock: FakeClock) -> Target:
    """A fresh named in-memory table with an injected clock (in process: never signed)."""
    return Target(
        url=f"memory://contract-{uuid.uuid4().hex}",
        options={"clock": clock, "max_entries": 1_000_000},
        advance=clock.advance,
        caps=frozenset({"clock", "bigint", "in_process"}),
    )


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()
