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
  the measured compute time, so a hot key is refreshed before it expires. The draw is made
  once per entry and shared by every reader (``shared_draw``: a hash of the key and the
  entry's soft expiry), so all threads, tasks and processes agree on when an entry is due and
  it is refreshed early once, not once per reader;
- *grace* (RFC 5861 stale-while-revalidate, stale-if-error): an entry up to ``grace`` seconds
  past its soft expiry is served while one caller refreshes it, or when the compute raises.
"""

from __future__ import annotations

import hashlib
import math
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
    default is ``time.time``); ``random``, when given, a float in [0, 1) drawn on each read in
    place of the entry's shared draw (``shared_draw``, the default); ``sleep`` / ``asleep``
    wait between polls of a waiter, starting at ``poll`` seconds and doubling up to
    ``poll_max``.
    """

    clock: Callable[[], float] = time.time
    random: Callable[[], float] | None = None
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
    OVERDUE = "overdue"  # past grace, within its refresh window: served while a refresh runs
    EXPIRED = "expired"  # past grace and its refresh window: a miss


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
    if now < soft + policy.grace + refresh_window(policy, entry.delta):
        return Freshness.OVERDUE
    return Freshness.EXPIRED


def refresh_window(policy: Policy, delta: float | None) -> float:
    """Seconds past its soft expiry (and grace) an entry stays servable to readers that find
    its refresh under way (``Freshness.OVERDUE``): one compute time with early refresh on,
    else none. An early refresh starts at least ``delta`` before the soft expiry; on a
    saturated process its thread also waits for the interpreter behind every request thread
    and can land after the expiry. Readers then get the value it replaces, at most ``delta``
    old past its expiry, instead of waiting for it."""
    if delta and policy.stampede and policy.beta > 0:
        return delta
    return 0.0


def entry_times(
    ttl_ms: int | None, grace: float, now: float, step_ms: int = 0, window: float = 0.0
) -> tuple[int, int | None]:
    """``(soft expiry in epoch ms or 0 for none, the backend TTL in ms or None)`` of a value
    written at ``now`` for ``ttl_ms``: the backend keeps it ``grace`` seconds and its refresh
    ``window`` (``refresh_window``) longer, and ``step_ms`` longer still when it may drop a
    value that much before its TTL (memcached counts in whole seconds): the soft expiry, not
    the backend, ends what is served."""
    if ttl_ms is None:
        return 0, None
    return int(now * 1000) + ttl_ms, ttl_ms + math.ceil((grace + window) * 1000) + step_ms


_LOG_MAX: Final = -math.log(2.0**-53)
"""The largest ``-ln(1 - u)`` of a 53-bit draw ``u`` (``shared_draw``, ``random.random()``):
XFetch never refreshes a value more than ``delta * (1 + beta * _LOG_MAX)`` before its soft
expiry."""


def is_fresh(times: list[int], key: bytes, policy: Policy, timing: Timing) -> bool:
    """True when a read-through returns a value with these times (``[soft_ms, delta_ms]``, as
    ``Codec.decode_times`` fills them) without any other step: a fresh hit, no early refresh
    drawn. The drivers' fast path.

    A value further from its soft expiry than any XFetch draw can reach is fresh without a
    draw (one clock read, no allocation); closer, the entry's draw decides as in
    ``read_through``.
    """
    soft_ms = times[0]
    if not soft_ms:
        return True
    now = timing.clock()
    left_ms = soft_ms - now * 1000.0
    delta_ms = times[1]
    if left_ms > delta_ms * (1.0 + policy.beta * _LOG_MAX) and left_ms > 0.0:
        return True
    entry = Entry(None, soft_ms / 1000.0, None if delta_ms < 0 else delta_ms / 1000.0)
    rand = timing.random() if timing.random is not None else DRAWS.draw(key, soft_ms)
    return freshness(entry, now, policy, rand) is Freshness.FRESH


class Op(Enum):
    GET = "get"  # -> Entry | None
    LEASE = "lease"  # -> bool: the lease was taken
    COMPUTE = "compute"  # -> (value, seconds it took); raises what the function raised
    STORE = "store"  # arg (value, delta) -> None
    RELEASE = "release"  # -> None: give the lease back (if still ours)
    WAIT = "wait"  # arg seconds -> None
    REFRESH = "refresh"  # arg soft expiry seen -> None: run ``refresh()`` in the background
    HOLD = "hold"  # arg seconds -> None: keep the lease (if still ours) that long, then free


class Step(NamedTuple):
    op: Op
    arg: Any = None


Flow = Generator[Step, Any, Any]

_GET: Final = Step(Op.GET)
_LEASE: Final = Step(Op.LEASE)
_COMPUTE: Final = Step(Op.COMPUTE)
_RELEASE: Final = Step(Op.RELEASE)


def shared_draw(key: bytes, soft_ms: int) -> float:
    """XFetch's draw for the entry of final key ``key`` with soft expiry ``soft_ms``: uniform
    in [0, 1) over entries, and the same in every thread, task and process that reads that
    entry (53 bits of a BLAKE2b hash of both), so they all see it due at the same moment.

    With a draw per reader, the earliest of N readers' draws decides: with R reads a second a
    key is refreshed about ``delta * beta * ln(R * delta)`` seconds early, and N processes
    drawing apart refresh it about ``delta * beta * ln N`` earlier than one. One draw per
    entry keeps the lead at ``delta * beta * ln(1 / (1 - u))`` (``delta * beta`` on average)
    whatever the readers, so each entry is refreshed early once (the lease picks the one
    reader that does it)."""
    digest = hashlib.blake2b(soft_ms.to_bytes(8, "big") + key, digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) * 2.0**-53


class Draws:
    """The last entries' shared draws (``shared_draw``) by key: a read within XFetch's reach
    of an entry's soft expiry looks its draw up instead of hashing again. Thread-safe enough:
    a lost update only hashes again."""

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._drawn: dict[bytes, tuple[int, float]] = {}

    def draw(self, key: bytes, soft_ms: int) -> float:
        """``shared_draw(key, soft_ms)``, remembered for the key's current entry."""
        last = self._drawn.get(key)
        if last is not None and last[0] == soft_ms:
            return last[1]
        u = shared_draw(key, soft_ms)
        if len(self._drawn) >= self._limit:
            self._drawn.clear()
        self._drawn[key] = (soft_ms, u)
        return u


DRAWS: Final = Draws()
"""The process's remembered draws (every read-through of the process shares them)."""


def draw(timing: Timing, key: bytes, entry: Entry) -> float:
    """XFetch's draw for ``entry`` of final key ``key``: the injected ``timing.random`` if
    any, else the entry's shared draw (0.0 for an entry without a soft expiry: never early)."""
    if timing.random is not None:
        return timing.random()
    if entry.soft is None:
        return 0.0
    return DRAWS.draw(key, round(entry.soft * 1000))


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
            state = freshness(entry, now, policy, draw(timing, key, entry))
            if state is Freshness.FRESH:
                return entry.value
            if state is Freshness.OVERDUE:  # (only with stampede protection)
                if not (yield _LEASE):  # its refresh is under way: serve it until that lands
                    return entry.value
                return (yield from _leased(policy, timing, None))
            if state is not Freshness.EXPIRED:
                if policy.stampede:
                    if (yield _LEASE):
                        yield Step(Op.REFRESH, entry.soft)
                    return entry.value
                stale = entry  # without the lease every caller recomputes; stale if it fails
        if not policy.stampede:
            return (yield from _compute(stale, leased=False))
        if (yield _LEASE):
            return (yield from _leased(policy, timing, stale))
        if waited_since is None:
            waited_since = now
        elif now - waited_since >= policy.lease_timeout:
            # the holder is slow and the lease keeps being taken: stop waiting, compute
            return (yield from _compute(stale, leased=False))
        yield Step(Op.WAIT, pause)
        pause = min(pause * 2, timing.poll_max)


def _leased(policy: Policy, timing: Timing, stale: Entry | None) -> Flow:
    """Compute and store with the lease just taken for a missing or expired value."""
    # the previous holder may have stored its value and freed the lease between our read and
    # our lease: read again before computing
    entry = yield _GET
    if entry is not None and freshness(entry, timing.clock(), policy, 0.0) in (
        Freshness.FRESH,
        Freshness.EARLY,
    ):
        yield _RELEASE
        return entry.value
    return (yield from _compute(stale, leased=True))


def _compute(stale: Entry | None, leased: bool) -> Flow:
    try:
        value, delta = yield _COMPUTE
    except Exception:
        if leased:
            yield _RELEASE
        if stale is not None:  # stale-if-error
            return stale.value
        raise
    except BaseException as exc:  # cancelled or interrupted: the next caller need not wait
        if leased and not isinstance(exc, GeneratorExit):
            yield _RELEASE
        raise
    yield from _store(value, delta, leased)
    return value


def _store(value: Any, delta: float, leased: bool) -> Flow:
    """Store the computed value, then free the lease (also when the store fails)."""
    try:
        yield Step(Op.STORE, (value, delta))
    except BaseException as exc:
        if leased and not isinstance(exc, GeneratorExit):  # closed: it can yield nothing
            yield _RELEASE
        raise
    if leased:
        yield _RELEASE


REFRESH_BACKOFF: Final = 1.0
"""Seconds (at most ``lease_timeout``) the lease stays taken after a background refresh
failed, so that readers of a value still served (early or within grace) retry at most once
per backoff instead of on every read."""


def refresh(policy: Policy, seen_soft: float | None = None) -> Flow:
    """Compute and store a value while holding the lease (a background refresh); after a
    failure, keep the lease ``REFRESH_BACKOFF`` seconds (its error is raised to the driver).

    First reads the key again: if another caller stored a newer value (its soft expiry is not
    ``seen_soft``, the one of the read that drew this refresh) and freed the lease between
    that read and this caller's lease, gives the lease back and returns that value instead of
    computing it a second time. Returns the value stored."""
    entry = yield _GET
    if entry is not None and seen_soft is not None and entry.soft != seen_soft:
        yield _RELEASE
        return entry.value
    try:
        value, delta = yield _COMPUTE
    except Exception:
        yield Step(Op.HOLD, min(policy.lease_timeout, REFRESH_BACKOFF))
        raise
    except BaseException as exc:  # cancelled (a loop closing): no backoff, the lease is free
        if not isinstance(exc, GeneratorExit):
            yield _RELEASE
        raise
    yield from _store(value, delta, leased=True)
    return value
