"""Cases: one (kind, scenario, contender) each, run ``n`` times on demand and timed.

A case's ``run(n)`` does its own untimed setup, times only the ``n`` calls, checks the result
and returns the seconds. The operation cases live here; requests.py and concurrency.py add
the framework and the many-callers ones.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .contenders import Api, Contender, Kind, Role
from .ops import OPS, WEIGHT, Step

T = TypeVar("T")
_ns = itertools.count()


class WrongResult(Exception):
    """A contender answered wrongly: its figures would be meaningless."""


def namespace() -> str:
    """A key namespace no earlier run used (so every run starts from clean keys)."""
    return f"b{next(_ns)}"


def verify(ok: bool, what: str, got: object) -> None:
    if not ok:
        raise WrongResult(f"{what}: unexpected result {got!r:.80}")


@dataclass(frozen=True)
class Case:
    kind: str
    scenario: str
    contender: str
    role: Role
    run: Callable[[int], float]
    unit: str = "ops/s"
    weight: int = 1
    """Keys per call: the quick mode divides its call count by it."""


class Probe:
    """Each contender's Api, built once (sync and async apart); a failure says why it is out."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.apis: dict[tuple[int, bool], Api] = {}
        self.missing: dict[str, str] = {}

    def api(self, contender: Contender, is_async: bool) -> Api | None:
        """The contender's Api, or None (and a reason in ``missing``) if it cannot run."""
        key = (id(contender), is_async)
        if key not in self.apis:
            factory = contender.aapi if is_async else contender.api
            if factory is None or contender.name in self.missing:
                return None
            try:
                api = factory()
                self.call(api, api.get, "bench-probe")
            except Exception as exc:
                self.missing[contender.name] = f"{type(exc).__name__}: {exc}"[:300]
                return None
            self.apis[key] = api
        return self.apis[key]

    def call(self, api: Api, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn``; for an async Api, run the awaitable to completion on the loop."""
        result = fn(*args)
        return self.loop.run_until_complete(result) if api.is_async else result


def timed_sync(step: Step, n: int) -> float:
    for setup in step.setup:
        setup()
    call = step.call
    start = time.perf_counter()
    for i in range(n):
        call(i)
    elapsed = time.perf_counter() - start
    got = step.check()
    verify(step.expect(got), "check after the timed calls", got)
    return elapsed


async def timed_async(step: Step, n: int) -> float:
    for setup in step.setup:
        await setup()
    call = step.call
    start = time.perf_counter()
    for i in range(n):
        await call(i)
    elapsed = time.perf_counter() - start
    got = await step.check()
    verify(step.expect(got), "check after the timed calls", got)
    return elapsed


def on_loop(loop: asyncio.AbstractEventLoop, coro: Callable[[], Awaitable[T]]) -> T:
    return loop.run_until_complete(coro())


def op_cases(kind: Kind, probe: Probe) -> list[Case]:
    """Every operation on every contender that has a sync or an asyncio Api."""
    cases = []
    for contender in kind.contenders:
        api = probe.api(contender, is_async=contender.api is None)
        if api is None:
            continue
        for name, op in OPS.items():

            def run(n: int, api: Api = api, op: Any = op, ns: str = namespace()) -> float:
                step = op(api, ns, n)
                if api.is_async:
                    return on_loop(probe.loop, lambda: timed_async(step, n))
                return timed_sync(step, n)

            weight = WEIGHT.get(name, 1)
            cases.append(Case(kind.name, name, contender.name, contender.role, run, weight=weight))
    return cases
