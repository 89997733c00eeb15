"""A stateful model with random faults (hypothesis): whatever the proxy does to a request,

- a counter equals the acknowledged increments plus at most the ones that raised
  ``OutcomeUnknown``;
- an acknowledged write is readable (a write that failed leaves the old or the new value);
- ``add`` never reports False for a key that holds its own value;
- ``replace`` never writes a key that was absent (nor back after a delete), and reports True
  only over a value that was there;
- nothing but a ``TsotError`` reaches the caller.

Redis, one server behind the fault proxy, sync and asyncio. The state is checked after every
step through a second Storage that talks to the server directly.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.faults.redis.conftest import Proxied
from tsot import BackendUnavailable, OutcomeUnknown, Storage, TsotError

pytestmark = [pytest.mark.server, pytest.mark.slow]

COUNTERS = ["c0", "c1"]
KEYS = ["k0", "k1", "lock"]
FAULTS = st.sampled_from(["none", "none", "none", "drop", "cut", "blackhole", "refuse"])
OPTIONS = {
    "socket_timeout": 0.2,
    "socket_connect_timeout": 0.5,
    "retries": 2,
    "retry_backoff": 0.005,
}


class FaultModel(RuleBasedStateMachine):
    env: ClassVar[tuple[Proxied, Callable[..., Any]]]

    def __init__(self) -> None:
        super().__init__()
        proxied, opener = self.env
        self.proxy = proxied.proxy
        self.store = opener(proxied.url, **OPTIONS)
        self.check = Storage.from_url(
            f"redis://127.0.0.1:{proxied.server.port}/0", namespace=self.store.namespace
        )
        self.acked = dict.fromkeys(COUNTERS, 0)
        self.maybe = dict.fromkeys(COUNTERS, 0)
        self.values: dict[str, set[Any]] = {k: {None} for k in KEYS}

    def _call(self, fault: str, match: bytes, call: Callable[[], Any]) -> tuple[bool, Any]:
        if fault == "drop":
            self.proxy.drop_reply(match=match)
        elif fault == "cut":
            self.proxy.cut_reply(after=1, match=match)
        elif fault == "blackhole":
            self.proxy.blackhole(count=1, match=match)
        elif fault == "refuse":
            self.proxy.cut_all()
            self.proxy.refuse(count=1)
        try:
            return True, call()
        except Exception as exc:
            assert isinstance(exc, TsotError), f"{type(exc).__name__} reached the caller: {exc}"
            assert isinstance(exc, BackendUnavailable), repr(exc)
            return False, exc
        finally:
            self.proxy.clear()

    @rule(counter=st.sampled_from(COUNTERS), fault=FAULTS)
    def incr(self, counter: str, fault: str) -> None:
        ok, out = self._call(fault, b"INCRBY", lambda: self.store.incr(counter))
        if ok:
            self.acked[counter] += 1
            assert self.acked[counter] <= out <= self.acked[counter] + self.maybe[counter]
        elif isinstance(out, OutcomeUnknown):
            self.maybe[counter] += 1

    @rule(key=st.sampled_from(KEYS), fault=FAULTS)
    def store_value(self, key: str, fault: str) -> None:
        value = uuid.uuid4().hex
        ok, _ = self._call(fault, b"SET", lambda: self.store.store(key, value))
        self.values[key] = {value} if ok else self.values[key] | {value}

    @rule(key=st.sampled_from(KEYS), fault=FAULTS)
    def add(self, key: str, fault: str) -> None:
        value = uuid.uuid4().hex
        ok, out = self._call(fault, b"NX", lambda: self.store.add(key, value))
        if ok and out:
            assert None in self.values[key], "add stored over a value that was there"
            self.values[key] = {value}
        elif ok:
            assert self.check.load(key) != value, "add reported False for its own value"
        else:
            self.values[key] = self.values[key] | {value}

    @rule(key=st.sampled_from(KEYS), fault=FAULTS)
    def replace(self, key: str, fault: str) -> None:
        value = uuid.uuid4().hex
        ok, out = self._call(fault, b"XX", lambda: self.store.replace(key, value))
        held = self.values[key] - {None}
        if ok and out:
            assert held, "replace stored over a key that was absent"
            self.values[key] = {value}
        elif ok:
            assert None in self.values[key], "replace reported False over a value"
            self.values[key] = {None}
        elif held:  # it may have run: the value is there only if one was
            self.values[key] = self.values[key] | {value}

    @rule(key=st.sampled_from(KEYS), fault=FAULTS)
    def delete(self, key: str, fault: str) -> None:
        ok, _ = self._call(fault, b"UNLINK", lambda: self.store.delete(key))
        self.values[key] = {None} if ok else self.values[key] | {None}

    @invariant()
    def counters_hold_acknowledged_plus_unknown(self) -> None:
        for counter in COUNTERS:
            held = self.check.load_int(counter) or 0
            assert self.acked[counter] <= held <= self.acked[counter] + self.maybe[counter], (
                counter,
                held,
                self.acked[counter],
                self.maybe[counter],
            )
            # what the server holds is now known: the unknown outcomes are settled
            self.acked[counter], self.maybe[counter] = held, 0

    @invariant()
    def acknowledged_writes_are_readable(self) -> None:
        for key in KEYS:
            held = self.check.load(key)
            assert held in self.values[key], (key, held, self.values[key])
            self.values[key] = {held}

    def teardown(self) -> None:
        self.proxy.clear()
        self.check.clear()


def test_random_faults_keep_the_promises(proxied: Proxied, opener: Callable[..., Any]) -> None:
    machine = type("Machine", (FaultModel,), {"env": (proxied, opener)})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=8,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
