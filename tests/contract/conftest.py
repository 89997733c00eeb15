"""The contract fixtures: ``store`` is a Storage, or an AsyncStorage seen through SyncView."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.contract.registry import SPECS, Target
from tests.helpers import LoopThread, SyncView
from tsot import AsyncStorage, Storage


def _params() -> list[Any]:
    out = []
    for spec in SPECS:
        for mode in ("sync", "async"):
            marks = [getattr(pytest.mark, m) for m in spec.marks]
            out.append(pytest.param((spec, mode), id=f"{spec.id}-{mode}", marks=marks))
    return out


@pytest.fixture(params=_params())
def target_mode(request: pytest.FixtureRequest) -> tuple[Target, str]:
    spec, mode = request.param
    return request.getfixturevalue(spec.fixture), mode


@pytest.fixture
def opener(target_mode: tuple[Target, str]) -> Iterator[Callable[..., Any]]:
    """Open stores on the test's target: ``opener(namespace=None, **options)``."""
    target, mode = target_mode
    loop = LoopThread() if mode == "async" else None
    opened: list[Any] = []

    def open_store(namespace: str | None = None, **options: Any) -> Any:
        ns = namespace if namespace is not None else f"ct{uuid.uuid4().hex[:12]}"
        opts = {**target.options, "namespace": ns, **options}
        if loop is None:
            store: Any = Storage.from_url(target.url, **opts)
        else:
            store = SyncView(AsyncStorage.from_url(target.url, **opts), loop)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        try:
            store.clear()
            store.close()
        except Exception:
            pass
    if loop is not None:
        loop.stop()


@pytest.fixture
def store(opener: Callable[..., Any]) -> Any:
    return opener()


@pytest.fixture
def target(target_mode: tuple[Target, str]) -> Target:
    return target_mode[0]


@pytest.fixture
def mode(target_mode: tuple[Target, str]) -> str:
    return target_mode[1]
