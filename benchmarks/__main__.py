"""``python -m benchmarks`` (run by ``scripts/bench``): start servers, measure, write the report."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
import time
import warnings
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import chart, djangosite, machine, memuse, report, runner, servers, targets
from .cases import Case, Probe, op_cases
from .concurrency import concurrency_cases
from .contenders import BUILDERS, KINDS, SERVER_KINDS, Kind
from .pages import request_cases

ROOT = Path(__file__).resolve().parent.parent


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    p.add_argument(
        "--quick",
        action="store_true",
        help="a few hundred calls per case, one round (proves the suite runs)",
    )
    p.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help=f"comma-separated storage kinds (default: {','.join(KINDS)})",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results",
        help="output directory (default: benchmarks/results)",
    )
    p.add_argument("--rounds", type=int, help="interleaved rounds (default: 5, quick: 1)")
    p.add_argument(
        "--budget",
        type=float,
        default=0.05,
        help="seconds per measurement in a full run (default: 0.05)",
    )
    p.add_argument("--scenarios", default="",
                   help="comma-separated substrings: only the scenarios containing one "
                        "(e.g. 'threads,tasks'; default: every scenario)")  # fmt: skip
    p.add_argument("--docs", action="store_true",
                   help="also write the results into docs/benchmarks.md")  # fmt: skip
    args = p.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        p.error(f"--kinds: unknown kind(s) {unknown}; choose from {', '.join(KINDS)}")
    args.kinds = kinds
    return args


def build(kinds: list[str], tmp: Path, stack: ExitStack) -> list[tuple[Kind | None, str]]:
    """Start the servers and build each kind; (None, reason) for a kind that cannot run."""
    built: list[tuple[Kind | None, str]] = []
    for name in kinds:
        where = ""
        if name in SERVER_KINDS:
            try:
                where = stack.enter_context(servers.running(SERVER_KINDS[name], tmp))
            except servers.ServerUnavailable as exc:
                built.append((None, f"{name}: {exc}"))
                continue
        (tmp / name).mkdir()
        built.append((BUILDERS[name](where, tmp / name), name))
    return built


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    clock = time.monotonic()
    plan = runner.Plan(rounds=args.rounds or (1 if args.quick else 5),
                       budget=None if args.quick else args.budget)  # fmt: skip
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    kinds_meta: list[dict[str, str]] = []
    cases: list[Case] = []
    unavailable: list[dict[str, str]] = []
    memory: list[dict[str, Any]] = []
    with ExitStack() as stack:
        built = build(args.kinds, tmp, stack)
        caches = {alias: conf for kind, _ in built if kind for alias, conf in kind.caches.items()}
        djangosite.setup(caches)
        probes: list[tuple[Kind, Probe]] = []
        for kind, name in built:
            if kind is None:
                kinds_meta.append({"name": name.split(":")[0], "title": name, "unavailable": name})
                continue
            probe = Probe(loop)
            probes.append((kind, probe))
            kinds_meta.append({"name": kind.name, "title": kind.title})
            cases += op_cases(kind, probe) + request_cases(kind, probe)
            cases += concurrency_cases(kind, probe)
        if args.scenarios:
            wanted = [w.strip() for w in args.scenarios.split(",") if w.strip()]
            cases = [c for c in cases if any(w in c.scenario for w in wanted)]
        runner.stderr(f"{len(cases)} cases; sizing, then {plan.rounds} round(s)")
        results = runner.run(cases, plan, runner.stderr)
        for kind, probe in probes:
            if kind.memory_contenders:
                runner.stderr(f"  memory use of {kind.name}")
                memory += memuse.measure(kind, probe, 5_000 if args.quick else 100_000)
            unavailable += [
                {"kind": kind.name, "contender": name, "reason": reason}
                for name, reason in probe.missing.items()
            ]
            for close in kind.closers:
                close()
    loop.close()
    meta: dict[str, Any] = {
        "started": started,
        "command": "scripts/bench " + shlex.join(sys.argv[1:]),
        "mode": "quick" if args.quick else "full",
        "rounds": plan.rounds,
        "sizing": f"{plan.n} calls per case"
        if plan.budget is None
        else f"each case sized to ~{plan.budget:g} s per round",
        "seconds": time.monotonic() - clock,
        "kinds": kinds_meta,
        "machine": machine.describe(),
    }
    rows = [r.as_dict() for r in results]
    return {"meta": meta, "results": rows, "memory": memory, "unavailable": unavailable,
            "targets": targets.evaluate(rows)}  # fmt: skip


def main(argv: list[str]) -> int:
    args = parse(argv)
    # Drivers left open at exit say so; the figures are what matters here.
    warnings.simplefilter("ignore", ResourceWarning)
    with tempfile.TemporaryDirectory(prefix="tsot-bench-") as tmp:
        data = measure(args, Path(tmp))
    js, md = report.write(args.out, data)
    png = chart.write(args.out, data)
    if args.docs:
        report.update_docs(ROOT / "docs" / "benchmarks.md", data)
    for t in data["targets"]:
        runner.stderr(f"  {t['status']:>12}  {t['title']}: {t['ratio']}")
    runner.stderr(f"wrote {md}, {js}, {png} in {data['meta']['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
