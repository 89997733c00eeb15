"""The chart: per kind, each contender's rate as a ratio to the raw client, per operation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .ops import OPS


def write(out: Path, data: dict[str, Any]) -> Path:
    """Write ``ratios.png`` (log scale, 1.0 = the raw client) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k["name"] for k in data["meta"]["kinds"] if not k.get("unavailable")]
    fig, axes = plt.subplots(
        max(len(kinds), 1), 1, figsize=(13, 3.6 * max(len(kinds), 1)), squeeze=False
    )
    for ax, kind in zip(axes[:, 0], kinds, strict=False):
        _panel(ax, kind, [r for r in data["results"] if r["kind"] == kind])
    fig.tight_layout()
    path = out / "ratios.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _panel(ax: Any, kind: str, rows: Sequence[dict[str, Any]]) -> None:
    ops = [op for op in OPS if any(r["scenario"] == op for r in rows)]
    raw = {r["scenario"]: r["median"] for r in rows if r["role"] == "raw" and r["median"]}
    names = list(dict.fromkeys(r["contender"] for r in rows if r["role"] in ("peer", "tsot")))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        xs, ys, role = [], [], "peer"
        for j, op in enumerate(ops):
            row = next((r for r in rows if r["scenario"] == op and r["contender"] == name), None)
            if row is not None and row["median"] and op in raw:
                xs.append(j + (i - (len(names) - 1) / 2) * width)
                ys.append(row["median"] / raw[op])
                role = row["role"]
        # tsot solid, peers hatched: the colours alone would not tell them apart
        ax.bar(xs, ys, width, label=name, hatch="" if role == "tsot" else "//", edgecolor="white")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(ops)))
    ax.set_xticklabels(ops, fontsize=8, rotation=20, ha="right")
    ax.set_ylabel("x raw client")
    ax.set_title(f"{kind}: rate as a ratio to the raw client (higher is better)")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
