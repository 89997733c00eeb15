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
    server); ``caps`` are capability flags tests may check (``in_process``: nothing outside
    the process writes there, so values are never signed: docs/backends/memory.md).
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


def _collect() -> list[Spec]:
    """The memory entry plus ``CONTRACT_SPECS`` of every module in tests/servers/."""
    import importlib
    from pathlib import Path

    specs = [Spec("memory", "memory_target")]
    for path in sorted((Path(__file__).parent.parent / "servers").glob("*.py")):
        if path.stem not in ("__init__", "proc"):
            module = importlib.import_module(f"tests.servers.{path.stem}")
            specs.extend(getattr(module, "CONTRACT_SPECS", []))
    return specs


SPECS: list[Spec] = _collect()
