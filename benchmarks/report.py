"""The Markdown report (targets, one table per kind, memory use) and the JSON of every round.

``python -m benchmarks.report A/results.json B/results.json ...`` prints the targets table of
several separate runs, each target at its worst run (what docs/benchmarks.md reports).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROLE_ORDER = {"raw": 0, "peer": 1, "tsot": 2, "ref": 3}
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def _ratio(mine: float | None, base: float | None) -> str:
    return f"{mine / base:.2f}x" if mine is not None and base else "—"


def kind_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One table: every scenario of a kind, its contenders, rate and ratios to raw and best peer."""
    out = [
        "| scenario | contender | role | per second | x raw | x best peer |",
        "|---|---|---|---:|---:|---:|",
    ]
    scenarios: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        scenarios.setdefault(r["scenario"], []).append(r)
    for scenario, group in scenarios.items():
        raw = next((r["median"] for r in group if r["role"] == "raw"), None)
        peers = [r["median"] for r in group if r["role"] == "peer" and r["median"] is not None]
        best_peer = max(peers) if peers else None
        for r in sorted(group, key=lambda r: ROLE_ORDER[r["role"]]):
            name = f"**{r['contender']}**" if r["role"] == "tsot" else r["contender"]
            if r["median"] is None:
                error = (r["error"] or "no result").replace("|", "/")
                out.append(f"| {scenario} | {name} | {r['role']} | {error} | — | — |")
                continue
            rate = f"{_rate(r['median'])} {r['unit'].split('/')[0]}"
            out.append(
                f"| {scenario} | {name} | {r['role']} | {rate} | {_ratio(r['median'], raw)} "
                f"| {_ratio(r['median'], best_peer)} |"
            )
    return out


def is_concurrent(scenario: str) -> bool:
    """A scenario of many callers at once (benchmarks/concurrency.py): its own table per kind."""
    return " thread" in scenario or " tasks" in scenario


def targets_table(targets: Sequence[dict[str, Any]]) -> list[str]:
    out = ["| target | needed | measured (worst scenario) | status |", "|---|---:|---|---|"]
    for t in targets:
        measured = "—"
        if t["ratio"] is not None:
            measured = f"{t['ratio']:.2f}x ({t['worst']})"
        out.append(f"| {t['title']} | {t['threshold']}x | {measured} | {t['status']} |")
    return out


def memory_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    base = next((r["bytes_per_100k"] for r in rows if r["contender"] == "Django LocMemCache"), None)
    out = [
        "| contender | bytes per 100,000 entries | x LocMemCache | entries measured |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        size = r["error"] or f"{r['bytes_per_100k'] / 1e6:.1f} MB"
        ratio = _ratio(r["bytes_per_100k"], base)
        out.append(f"| {r['contender']} | {size} | {ratio} | {r['entries']:,} |")
    return out


def machine_lines(meta: dict[str, Any]) -> list[str]:
    m = meta["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    servers = "; ".join(m["servers"].values())
    return [
        f"- CPU: {m['cpu']}, {m['nproc']} CPUs available (`nproc`), {m['system']}",
        f"- Python {m['python']}; {libs}",
        f"- Servers: {servers}",
        f"- Commit: {m['commit']}",
        f"- Command: `{meta['command']}` ({meta['mode']}: {meta['rounds']} round(s), "
        f"{meta['sizing']}); took {meta['seconds']:.0f} s",
    ]


def markdown(data: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    meta = data["meta"]
    lines = [f"Run of {meta['started']}.", "", *machine_lines(meta), ""]
    lines += ["### Targets", "", *targets_table(data["targets"]), ""]
    for kind in meta["kinds"]:
        rows = [r for r in data["results"] if r["kind"] == kind["name"]]
        lines += [f"### {kind['title']}", ""]
        if kind.get("unavailable"):
            lines += [f"Not measured: {kind['unavailable']}", ""]
            continue
        single = [r for r in rows if not is_concurrent(r["scenario"])]
        many = [r for r in rows if is_concurrent(r["scenario"])]
        if single:
            lines += [*kind_table(single), ""]
        if many:
            lines += [f"#### {kind['title']}: threads and asyncio tasks", "", *kind_table(many), ""]
        missing = [m for m in data["unavailable"] if m["kind"] == kind["name"]]
        for m in missing:
            lines.append(f"- not available: {m['contender']} — {m['reason']}")
        if missing:
            lines.append("")
    if data["memory"]:
        lines += ["### Memory use of the in-process caches", "", *memory_table(data["memory"]), ""]
    return "\n".join(lines)


def write(out: Path, data: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``results.json`` (every round) and ``results.md``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "results.json", out / "results.md"
    js.write_text(json.dumps(data, indent=1) + "\n")
    md.write_text("# tsot benchmark results\n\n" + markdown(data) + "\n")
    return js, md


def update_docs(doc: Path, data: dict[str, Any]) -> None:
    """Replace the results section of ``doc`` (between the START and END markers)."""
    text = doc.read_text()
    head, sep, rest = text.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"{doc} has no {START} ... {END} section to replace")
    doc.write_text(f"{head}{START}\n{markdown(data)}\n{END}{tail}")


def worst_of_runs(runs: Sequence[dict[str, Any]]) -> list[str]:
    """Each target measured in any of ``runs``: its ratio in every run and the worst of them."""
    out = [
        "| target | needed | worst of the runs | every run | status |",
        "|---|---:|---|---|---|",
    ]
    titles = dict.fromkeys(t["title"] for run in runs for t in run["targets"])
    for title in titles:
        found = [t for run in runs for t in run["targets"] if t["title"] == title]
        measured = [t for t in found if t["ratio"] is not None]
        if not measured:
            continue
        worst = min(measured, key=lambda t: t["ratio"])
        every = ", ".join(f"{t['ratio']:.2f}x" for t in measured)
        status = "met" if len(measured) == len(runs) and worst["status"] == "met" else "not met"
        out.append(
            f"| {title} | {worst['threshold']}x | {worst['ratio']:.2f}x ({worst['worst']}) "
            f"| {every} | {status} |"
        )
    return out


def main(paths: Sequence[str]) -> int:
    runs = [json.loads(Path(p).read_text()) for p in paths]
    print("\n".join(worst_of_runs(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
