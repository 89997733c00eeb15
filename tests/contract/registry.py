"""The backends the contract suite runs against: one entry each, naming its target fixture.

A target fixture returns a ``Target``; backends with server fixtures live in tests/servers/.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Target:
    """Where to open a Storage for one test, and what the backend can do.

    ``url`` is a storage URL (query options allowed); ``options`` are extra keyword options;
    ``advance`` moves the backend's clock (None when the backend runs on real time, e.g. a
    server); ``caps`` are capability flags tests may check.
    """

    url: str
    options: dict[str, Any] = field(default_factory=dict)
    advance: Callable[[float], None] | None = None
    caps: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Spec:
    id: str
    fixture: str
    marks: tuple[str, ...] = ()


SPECS: list[Spec] = [
    Spec("memory", "memory_target"),
    # backend issues add one line each here, e.g.
    # Spec("redis", "redis_target", ("server",)),
]
