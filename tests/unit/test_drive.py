"""tsot.drive: one operation, written once, run by the sync and by the asyncio driver alike."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tsot.drive import Steps, arun, run


class Boom(Exception):
    pass


def _fail(what: str) -> None:
    raise Boom(what)


async def _twice(x: int) -> int:
    return 2 * x


def _op(double: Any) -> Steps[tuple[Any, ...]]:
    """Calls a function, one that raises (caught here), then ``double``; returns what it got."""
    first = yield len, ("abc",)
    try:
        yield _fail, ("x",)
    except Boom as exc:
        caught = str(exc)
    doubled = yield double, (first,)
    return first, caught, doubled


def test_the_same_operation_on_both_drivers() -> None:
    assert run(_op(lambda x: 2 * x)) == (3, "x", 6)
    # arun awaits an awaitable result (an async backend's coroutine) and takes a plain one as is
    assert asyncio.run(arun(_op(_twice))) == (3, "x", 6)
    assert asyncio.run(arun(_op(lambda x: 2 * x))) == (3, "x", 6)


def _uncaught() -> Steps[None]:
    yield _fail, ("out",)


def test_an_error_the_operation_does_not_catch_is_raised() -> None:
    with pytest.raises(Boom, match="out"):
        run(_uncaught())
    with pytest.raises(Boom, match="out"):
        asyncio.run(arun(_uncaught()))


def _no_calls() -> Steps[str]:
    return "done"
    yield  # a generator with nothing to call


def test_an_operation_without_calls_returns_at_once() -> None:
    assert run(_no_calls()) == "done"
    assert asyncio.run(arun(_no_calls())) == "done"
