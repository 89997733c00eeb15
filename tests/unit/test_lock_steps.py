"""The acquire steps of tsot.locks, driven by hand against a real memory store so another owner
can act between two steps."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import FakeClock
from tsot import Storage
from tsot.locks import Steps, acquire_steps, extend_steps


def _step(steps: Steps, backend: Any, reply: Any) -> tuple[str, tuple[Any, ...], Any]:
    name, args = steps.send(reply)
    return name, args, getattr(backend, name)(*args)


def test_lock_lost_between_add_and_incr_is_not_taken() -> None:
    clock = FakeClock()
    backend = Storage.new_imc(clock=clock).backend
    steps = acquire_steps(b"job", b"A", 1000)
    name, args = next(steps)
    assert name == "add"
    name, args, reply = _step(steps, backend, backend.add(*args))
    assert name == "incr" and reply == 1
    clock.advance(2)  # A's lock expires before its incr is seen...
    assert backend.add(b"job", b"B", 1000)  # ...and B takes it
    name, args, reply = _step(steps, backend, reply)
    assert name == "expire_if" and reply is False
    with pytest.raises(StopIteration) as stop:
        steps.send(reply)
    assert stop.value.value is None  # A does not hold it
    assert backend.get(b"job") == b"B"


def test_extend_of_a_persistent_lock_and_of_a_missing_one() -> None:
    backend = Storage.new_imc().backend
    backend.set(b"job", b"A", None)
    steps = extend_steps(b"job", b"A", 5000, replace=False)
    name, args = next(steps)
    assert name == "ttl"
    name, args = steps.send(backend.ttl(*args))
    assert name == "expire_if" and args == (b"job", b"A", 5000)
    steps = extend_steps(b"gone", b"A", 5000, replace=False)
    next(steps)
    with pytest.raises(StopIteration) as stop:
        steps.send(backend.ttl(b"gone"))
    assert stop.value.value is False
