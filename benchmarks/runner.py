"""Running cases: size each one to a time budget, then rounds that interleave the contenders.

Within a round, each scenario runs all its contenders back to back, starting from a different
contender every round, so a noisy moment of the machine lands on all of them; the report
keeps every round and uses the median. Before each scenario the collector runs and freezes
what is alive, so a full collection triggered mid-measurement does not scan the harness's (and
earlier contenders') objects and charge them to whoever happened to trigger it.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .cases import Case, WrongResult

MIN_N = 2
MAX_N = 1_000_000


@dataclass(frozen=True)
class Plan:
    rounds: int
    budget: float | None
    """Seconds per measurement (each case sized to it), or None to run a fixed ``n``."""
    n: int = 300
    """Calls per measurement when ``budget`` is None (the quick mode)."""


@dataclass
class Result:
    case: Case
    n: int = 0
    rates: list[float] = field(default_factory=list)
    error: str | None = None
    wall: float = 0.0
    """Seconds spent on this case in all, setup and checks included."""

    @property
    def median(self) -> float | None:
        return statistics.median(self.rates) if self.rates and self.error is None else None

    def as_dict(self) -> dict[str, Any]:
        c = self.case
        return {
            "kind": c.kind,
            "scenario": c.scenario,
            "contender": c.contender,
            "role": c.role,
            "unit": c.unit,
            "n": self.n,
            "rounds": [round(r, 1) for r in self.rates],
            "median": None if self.median is None else round(self.median, 1),
            "error": self.error,
            "wall_s": round(self.wall, 2),
        }


def _attempt(result: Result, n: int) -> float | None:
    """Run the case once; seconds, or None after recording why it failed."""
    start = time.monotonic()
    try:
        return result.case.run(n)
    except WrongResult as exc:
        result.error = f"wrong result: {exc}"
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        result.wall += time.monotonic() - start
    return None


def _size(result: Result, plan: Plan) -> None:
    """Pick ``n`` so one measurement lasts about ``plan.budget`` (two warm-up runs)."""
    if plan.budget is None:
        if _attempt(result, 1) is not None:  # warm-up: connections, first-call costs
            result.n = max(MIN_N, plan.n // result.case.weight)
        return
    n = 1
    for _ in range(2):
        seconds = _attempt(result, n)
        if seconds is None:
            return
        n = int(min(MAX_N, max(MIN_N, n * plan.budget / max(seconds, 1e-6) / 4)))
    result.n = min(MAX_N, n * 4)


def _settle() -> None:
    gc.collect()
    gc.freeze()


def run(cases: list[Case], plan: Plan, log: Callable[[str], None] = print) -> list[Result]:
    """Measure every case over ``plan.rounds`` interleaved rounds; failures are kept as errors."""
    results = [Result(c) for c in cases]
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.case.kind, r.case.scenario), []).append(r)
    started = time.monotonic()
    for (kind, scenario), group in groups.items():
        _settle()
        for r in group:
            _size(r, plan)
        log(f"  sized {kind} / {scenario}")
    for round_no in range(plan.rounds):
        for group in groups.values():
            _settle()
            live = [r for r in group if r.error is None]
            shift = round_no % len(live) if live else 0
            for r in live[shift:] + live[:shift]:
                seconds = _attempt(r, r.n)
                if seconds is not None:
                    r.rates.append(r.n / max(seconds, 1e-9))
        log(f"  round {round_no + 1}/{plan.rounds} done at {time.monotonic() - started:.0f}s")
    return results


def stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
