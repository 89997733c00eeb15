"""The core's one sync and one asyncio driver: each operation of several I/O steps is written
once, free of I/O, and run by either (docs/architecture.md#sync-and-async-twins).

An operation is a generator of ``Call``s, ``(function, args)``: a backend primitive, a sleep, a
compute, a background start. ``run`` calls each one and sends its result back into the
generator (or throws its error in, where the operation may catch it); ``arun`` does the same on
the running loop and awaits a result that is awaitable (an async backend's coroutine,
``asyncio.sleep``, a compute's awaitable). The generator's return value is the operation's.
A call interrupted by a ``BaseException`` (a task's cancellation, ``KeyboardInterrupt``) has it
thrown in too, so an operation that holds something (a read-through's lease) can give it back
before the exception goes on; one that catches only ``Exception`` lets it through at once.
So the sync and asyncio APIs differ only in the driver they hand an operation to, and in which
functions (sync or async backend, ``time.sleep`` or ``asyncio.sleep``) it yields.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from typing import Any, TypeVar

T = TypeVar("T")
Call = tuple[Callable[..., Any], tuple[Any, ...]]
Steps = Generator[Call, Any, T]


class _Done:
    """An operation's return value, once its generator stops."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _resume(steps: Steps[Any], reply: Any, error: BaseException | None) -> Call | _Done:
    """Send ``reply`` (or throw ``error``) into ``steps``: its next call, or its return value."""
    try:
        return steps.send(reply) if error is None else steps.throw(error)
    except StopIteration as stop:
        return _Done(stop.value)


def run(steps: Steps[T]) -> T:
    """Run ``steps`` to its end in this thread; its return value (or the error it raises)."""
    call = _resume(steps, None, None)
    while not isinstance(call, _Done):
        try:
            reply, error = call[0](*call[1]), None
        except BaseException as exc:  # thrown in: see the module's docstring
            reply, error = None, exc
        call = _resume(steps, reply, error)
    return call.value  # type: ignore[no-any-return]


async def arun(steps: Steps[T]) -> T:
    """``run`` on the running loop: a call's awaitable result is awaited."""
    call = _resume(steps, None, None)
    while not isinstance(call, _Done):
        try:
            reply, error = call[0](*call[1]), None
            if inspect.isawaitable(reply):
                reply = await reply
        except BaseException as exc:  # a cancellation too: the operation may clean up first
            reply, error = None, exc
        call = _resume(steps, reply, error)
    return call.value  # type: ignore[no-any-return]
