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


# Parameter ids that name a second server build or a combined topology of code already covered:
# valkey-server beside redis-server, and the local cache on a Cluster beside each of the two alone.
VARIANT_PREFIXES = ("valkey",)
VARIANT_IDS = ("cluster-local", "cluster_local")


def _is_variant(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return False
    ids: str = callspec.id
    if any(part.startswith(VARIANT_PREFIXES) for part in ids.split("-")):
        return True
    return any(v in ids for v in VARIANT_IDS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``variant`` the tests whose parameters only repeat covered code on another build.

    mainline runs them; the version environments (oldest, newest: other Python, Django and
    client-library releases) run each path once, on redis-server (scripts/test).
    """
    for item in items:
        if _is_variant(item):
            item.add_marker(pytest.mark.variant)
