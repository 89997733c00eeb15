"""The worst-of-several-runs targets table (what docs/benchmarks.md reports for issue #23)."""

from __future__ import annotations

from typing import Any

from benchmarks.report import worst_of_runs


def run(ratio: float | None, threshold: float = 1.3) -> dict[str, Any]:
    status = "not measured" if ratio is None else "met" if ratio >= threshold else "not met"
    target = {"title": "aget vs vcache", "threshold": threshold, "ratio": ratio,
              "worst": "aget hit 100 B, 50 tasks", "status": status}  # fmt: skip
    return {"targets": [target]}


def test_the_worst_run_decides() -> None:
    table = worst_of_runs([run(1.9), run(1.25), run(1.6)])
    assert table[2] == (
        "| aget vs vcache | 1.3x | 1.25x (aget hit 100 B, 50 tasks) "
        "| 1.90x, 1.25x, 1.60x | not met |"
    )
    assert worst_of_runs([run(1.4), run(1.31)])[2].endswith("| 1.40x, 1.31x | met |")


def test_a_run_that_did_not_measure_it_leaves_it_unmet() -> None:
    assert worst_of_runs([run(1.5), run(None)])[2].endswith("| 1.50x | not met |")
    assert worst_of_runs([run(None)])[2:] == []
