"""The cache operations measured on every contender, each with an untimed setup and a check.

An operation builds a ``Step`` for ``n`` timed calls in a key namespace that stays the same
for all runs of one case (so a store holds a steady set of keys, not one more set per run); the
check runs after the timed part and proves the calls did what they claim (a hit was a hit).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .contenders import Api

STR = ("tsot benchmark value " * 5)[:100]
"""A 100-character str."""
DICT = {f"field{i:03d}": f"{i:03d}" + "v" * 87 for i in range(100)}
"""A dict that pickles to about 10 KB (distinct values: pickle would share equal objects)."""
POOL = 100
"""Keys cycled through by get and set."""
MANY = 100
"""Keys per get_many / set_many call."""
_fresh = itertools.count()


@dataclass(frozen=True)
class Step:
    setup: list[Callable[[], Any]]
    call: Callable[[int], Any]
    check: Callable[[], Any]
    expect: Callable[[Any], bool]


OpFn = Callable[[Api, str, int], Step]


def _keys(ns: str, n: int) -> list[str]:
    return [f"{ns}:{i}" for i in range(n)]


def _get_hit(value: Any) -> OpFn:
    """A hot key's read: written, then read once before the timed reads (untimed), as a hot key
    has been read before. Without it a store that keeps what it reads (the Redis local cache)
    timed one server read per key, a fifth of the calls of a short measurement."""

    def op(api: Api, ns: str, n: int) -> Step:
        keys, get, set_ = _keys(ns, POOL), api.get, api.set
        return Step(
            [lambda k=k: set_(k, value) for k in keys]  # type: ignore[misc]
            + [lambda k=k: get(k) for k in keys],  # type: ignore[misc]
            lambda i: get(keys[i % POOL]),
            lambda: get(keys[-1]),
            lambda got: got == value,
        )

    return op


def get_miss(api: Api, ns: str, n: int) -> Step:
    keys, get = _keys(ns, POOL), api.get
    return Step([], lambda i: get(keys[i % POOL]), lambda: get(keys[0]), lambda got: got is None)


def _set(value: Any) -> OpFn:
    def op(api: Api, ns: str, n: int) -> Step:
        keys, set_ = _keys(ns, POOL), api.set
        return Step(
            [], lambda i: set_(keys[i % POOL], value), lambda: api.get(keys[0]), value.__eq__
        )

    return op


def add(api: Api, ns: str, n: int) -> Step:
    """``add`` of a new key every call (the path that writes); new keys on every run."""
    keys, add_ = _keys(f"{ns}:{next(_fresh)}", n), api.add
    return Step([], lambda i: add_(keys[i], STR), lambda: api.get(keys[-1]), STR.__eq__)


def delete(api: Api, ns: str, n: int) -> Step:
    """``delete`` of a key that exists (written by the setup)."""
    keys, delete_, set_ = _keys(ns, n), api.delete, api.set
    return Step(
        [lambda k=k: set_(k, STR) for k in keys],  # type: ignore[misc]
        lambda i: delete_(keys[i]),
        lambda: api.get(keys[-1]),
        lambda got: got is None,
    )


def incr(api: Api, ns: str, n: int) -> Step:
    key, incr_ = f"{ns}:n", api.incr
    return Step(
        [lambda: api.set(key, 0)], lambda i: incr_(key), lambda: api.get(key), lambda got: got == n
    )


def get_many(api: Api, ns: str, n: int) -> Step:
    keys, get_many_ = _keys(ns, MANY), api.get_many
    mapping = dict.fromkeys(keys, STR)
    return Step(
        [lambda: api.set_many(mapping)],
        lambda i: get_many_(keys),
        lambda: get_many_(keys),
        lambda got: len(got) == MANY and STR in (got.values() if isinstance(got, dict) else got),
    )


def set_many(api: Api, ns: str, n: int) -> Step:
    keys, set_many_ = _keys(ns, MANY), api.set_many
    mapping = dict.fromkeys(keys, STR)
    return Step([], lambda i: set_many_(mapping), lambda: api.get(keys[-1]), STR.__eq__)


OPS: dict[str, OpFn] = {
    "get hit 100 B str": _get_hit(STR),
    "get hit 10 KB dict": _get_hit(DICT),
    "get miss": get_miss,
    "set 100 B str": _set(STR),
    "set 10 KB dict": _set(DICT),
    "add": add,
    "delete": delete,
    "incr": incr,
    "get_many 100": get_many,
    "set_many 100": set_many,
}
"""Operation name -> builder; the names are the table rows."""

MULTI_KEY = ("get_many 100", "set_many 100")
SINGLE_KEY = tuple(name for name in OPS if name not in MULTI_KEY)
WEIGHT = dict.fromkeys(MULTI_KEY, MANY)
"""Keys touched per call, where not 1: the quick mode runs fewer calls of these."""
