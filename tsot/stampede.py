"""Stampede protection as pure decisions: which read-through step comes next (docs/stampede.md).

A read-through is a generator (``read_through``) that yields ``Step``s and receives their
results; ``tsot.readthrough`` runs it against a ``Storage`` (sync) or an ``AsyncStorage``
(asyncio), so the sync and async paths make the same decisions. Time and chance come from an
injected ``Timing``, so tests drive every branch with a fake clock.

The three mechanisms:

- the *lease*: on a miss one caller (across threads, tasks and processes: the lease is a key
  in the backend, written with ``add``) computes; the others wait for its value, at most
  ``lease_timeout`` seconds, and take over when the lease expires;
- *early refresh* (XFetch, Vattani et al., VLDB 2015): a hit with ``t`` seconds left refreshes
  in the background with probability ``exp(-(t - delta) / (delta * beta))``, ``delta`` being
  the measured compute time, so a hot key is refreshed before it expires;
- *grace* (RFC 5861 stale-while-revalidate, stale-if-error): an entry up to ``grace`` seconds
  past its soft expiry is served while one caller refreshes it, or when the compute raises.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, NamedTuple

from .config import CORE_OPTIONS
from .ttl import EXPIRED

STAMPEDE_OPTIONS: Final = ("stampede", "grace", "beta", "lease_timeout")
"""The core options (``tsot.config.CORE_OPTIONS``) a Policy is made of, in its field order."""


class Policy(NamedTuple):
    """The stampede options of one read-through (``OPTIONS``)."""

    stampede: bool = True
    grace: float = 0.0
    beta: float = 1.0
    lease_timeout: float = 10.0

    def with_overrides(self, **given: Any) -> Policy:
        """This policy with the options given (None: keep), each checked as the option is."""
        if all(v is None for v in given.values()):  # the common call: the storage's options
            return self
        specs = {o.name: o for o in CORE_OPTIONS}
        changed = {n: specs[n].parse(v) for n, v in given.items() if v is not None}
        return self._replace(**changed)


def policy_of(options: Mapping[str, Any]) -> Policy:
    """The Policy of parsed core options."""
    return Policy(*(options[name] for name in STAMPEDE_OPTIONS))


@dataclass(frozen=True)
class Timing:
    """Where time and chance come from; tests and benchmarks inject their own.

    ``clock`` gives wall-clock seconds (soft expiries are shared by every process, so the
    default is ``time.time``); ``random`` a float in [0, 1); ``sleep`` / ``asleep`` wait between
    polls of a waiter, starting at ``poll`` seconds and doubling up to ``poll_max``.
    """

    clock: Callable[[], float] = time.time
    random: Callable[[], float] = random.random
    sleep: Callable[[float], None] = time.sleep
    asleep: Callable[[float], Any] | None = None  # None: asyncio.sleep
    poll: float = 0.005
    poll_max: float = 0.05


class Entry(NamedTuple):
    """A stored value and its times: ``soft`` expiry (epoch seconds, None: never), ``delta``
    (compute seconds, None: unknown, as for values written by ``store``)."""

    value: Any
    soft: float | None
    delta: float | None


def entry_of(decoded: tuple[Any, int, int]) -> Entry:
    """The Entry of ``Codec.decode_entry``'s result."""
    value, soft_ms, delta_ms = decoded
    soft = soft_ms / 1000.0 if soft_ms else None
    return Entry(value, soft, None if delta_ms < 0 else delta_ms / 1000.0)


class Freshness(Enum):
    FRESH = "fresh"  # serve it
    EARLY = "early"  # serve it, refresh in the background (XFetch chose this read)
    STALE = "stale"  # past its soft expiry, within grace: serve it, refresh
    EXPIRED = "expired"  # past grace: a miss


def freshness(entry: Entry, now: float, policy: Policy, rand: float) -> Freshness:
    """Classify ``entry`` at ``now``; ``rand`` is uniform in [0, 1) (XFetch's draw)."""
    soft = entry.soft
    if soft is None:
        return Freshness.FRESH
    if now < soft:
        delta = entry.delta
        # XFetch, shifted by one compute time so that the refresh ends before the expiry:
        # refresh when now + delta - delta * beta * ln(u) >= expiry, u uniform in (0, 1]
        if (
            policy.stampede
            and delta
            and policy.beta > 0
            and now + delta - delta * policy.beta * math.log(1.0 - rand) >= soft
        ):
            return Freshness.EARLY
        return Freshness.FRESH
    if now < soft + policy.grace:
        return Freshness.STALE
    return Freshness.EXPIRED


def entry_times(ttl_ms: int | None, grace: float, now: float) -> tuple[int, int | None]:
    """``(soft expiry in epoch ms or 0 for none, the backend TTL in ms or None)`` of a value
    written at ``now`` for ``ttl_ms``: the backend keeps it ``grace`` seconds longer."""
    if ttl_ms is None:
        return 0, None
    return int(now * 1000) + ttl_ms, ttl_ms + math.ceil(grace * 1000)


def fresh_value(entry: Entry | None, key: bytes, policy: Policy, timing: Timing) -> Any:
    """The value of ``entry`` when a read-through can return it without any other step (a
    fresh hit, no early refresh drawn), else ``NOT_FRESH``: the drivers' fast path."""
    if entry is None:
        return NOT_FRESH
    if entry.soft is None:
        return entry.value
    now = timing.clock()
    rand = DRAWS.draw(key, now, entry.delta, timing.random)
    return entry.value if freshness(entry, now, policy, rand) is Freshness.FRESH else NOT_FRESH


NOT_FRESH: Final = object()


class Op(Enum):
    GET = "get"  # -> Entry | None
    LEASE = "lease"  # -> bool: the lease was taken
    COMPUTE = "compute"  # -> (value, seconds it took); raises what the function raised
    STORE = "store"  # arg (value, delta) -> None
    RELEASE = "release"  # -> None: give the lease back (if still ours)
    WAIT = "wait"  # arg seconds -> None
    REFRESH = "refresh"  # -> None: run ``refresh()`` in the background (the lease is held)
    HOLD = "hold"  # arg seconds -> None: keep the lease (if still ours) that long, then free


class Step(NamedTuple):
    op: Op
    arg: Any = None


Flow = Generator[Step, Any, Any]

_GET: Final = Step(Op.GET)
_LEASE: Final = Step(Op.LEASE)
_COMPUTE: Final = Step(Op.COMPUTE)
_RELEASE: Final = Step(Op.RELEASE)
_REFRESH: Final = Step(Op.REFRESH)


class Draws:
    """XFetch's random draws, at most one per key and ``delta``-long period in a process.

    Drawing on every read, a key read R times a second is refreshed about
    ``delta * beta * ln(R * delta)`` seconds early: with many readers, several times per TTL.
    One draw per period of ``delta`` seconds keeps the lead near ``delta * beta`` whatever the
    read rate (each process draws its own). Thread-safe enough: a lost update only redraws.
    """

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._drawn: dict[bytes, tuple[int, float]] = {}

    def draw(self, key: bytes, now: float, delta: float | None, rand: Callable[[], float]) -> float:
        """The draw for ``key`` at ``now``: ``rand()`` once per ``delta`` seconds, else the last."""
        if not delta:
            return rand()
        period = int(now / delta)
        last = self._drawn.get(key)
        if last is not None and last[0] == period:
            return last[1]
        u = rand()
        if len(self._drawn) >= self._limit:
            self._drawn.clear()
        self._drawn[key] = (period, u)
        return u


DRAWS: Final = Draws()
"""The process's draws (every read-through of the process shares them)."""


def read_through(policy: Policy, ttl_ms: int | None, timing: Timing, key: bytes = b"") -> Flow:
    """The value of ``key`` (a final key), computed at most once per expiry across callers
    (module docstring).

    Returns the value; raises what the compute raised unless a stale value within grace can
    be served instead.
    """
    if ttl_ms == EXPIRED:  # nothing would be stored: compute and return
        value, _ = yield _COMPUTE
        return value
    stale: Entry | None = None
    waited_since: float | None = None
    pause = timing.poll
    while True:
        entry: Entry | None = yield _GET
        now = timing.clock()
        if entry is not None:
            rand = DRAWS.draw(key, now, entry.delta, timing.random)
            state = freshness(entry, now, policy, rand)
            if state is Freshness.FRESH:
                return entry.value
            if state is not Freshness.EXPIRED:
                if policy.stampede:
                    if (yield _LEASE):
                        yield _REFRESH
                    return entry.value
                stale = entry  # without the lease every caller recomputes; stale if it fails
        if not policy.stampede:
            return (yield from _compute(stale, leased=False))
        if (yield _LEASE):
            # the previous holder may have stored its value and freed the lease between our
            # read and our lease: read again before computing
            entry = yield _GET
            if entry is not None and freshness(entry, timing.clock(), policy, 0.0) in (
                Freshness.FRESH,
                Freshness.EARLY,
            ):
                yield _RELEASE
                return entry.value
            return (yield from _compute(stale, leased=True))
        if waited_since is None:
            waited_since = now
        elif now - waited_since >= policy.lease_timeout:
            # the holder is slow and the lease keeps being taken: stop waiting, compute
            return (yield from _compute(stale, leased=False))
        yield Step(Op.WAIT, pause)
        pause = min(pause * 2, timing.poll_max)


def _compute(stale: Entry | None, leased: bool) -> Flow:
    try:
        value, delta = yield _COMPUTE
    except Exception:
        if leased:
            yield _RELEASE
        if stale is not None:  # stale-if-error
            return stale.value
        raise
    try:
        yield Step(Op.STORE, (value, delta))
    finally:
        if leased:
            yield _RELEASE
    return value


REFRESH_BACKOFF: Final = 1.0
"""Seconds (at most ``lease_timeout``) the lease stays taken after a background refresh
failed, so that readers of a value still served (early or within grace) retry at most once
per backoff instead of on every read."""


def refresh(policy: Policy) -> Flow:
    """Compute and store a value while holding the lease (a background refresh); after a
    failure, keep the lease ``REFRESH_BACKOFF`` seconds (its error is raised to the driver)."""
    try:
        value, delta = yield _COMPUTE
    except Exception:
        yield Step(Op.HOLD, min(policy.lease_timeout, REFRESH_BACKOFF))
        raise
    try:
        yield Step(Op.STORE, (value, delta))
    finally:
        yield _RELEASE
