"""Profile one contender on one operation: ``python -m benchmarks.profile KIND CONTENDER OP``.

Starts the kind's server like the full run, runs the operation ``--n`` times under cProfile
and prints the functions that took the most time of their own (``--sort cumulative`` for
totals). Example: ``.venv/bin/python -m benchmarks.profile redis "tsot_django RedisCache" incr``
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from . import djangosite
from .__main__ import build
from .cases import Probe, namespace, timed_async, timed_sync
from .contenders import KINDS
from .ops import OPS


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    p.add_argument("kind", choices=KINDS)
    p.add_argument("contender", help='a row name, e.g. "tsot_django RedisCache"')
    p.add_argument("op", choices=list(OPS))
    p.add_argument("--n", type=int, default=20_000, help="calls to profile (default 20000)")
    p.add_argument("--sort", default="tottime", help="pstats sort key (default tottime)")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory(prefix="tsot-profile-") as tmp, ExitStack() as stack:
        ((kind, reason),) = build([args.kind], Path(tmp), stack)
        if kind is None:
            sys.exit(f"cannot run {args.kind}: {reason}")
        djangosite.setup(kind.caches)
        contender = next((c for c in kind.contenders if c.name == args.contender), None)
        if contender is None:
            sys.exit(f"no contender {args.contender!r}; have {[c.name for c in kind.contenders]}")
        probe = Probe(loop)
        api = probe.api(contender, is_async=contender.api is None)
        if api is None:
            sys.exit(f"{args.contender} is not available: {probe.missing}")
        ns = namespace()
        step = OPS[args.op](api, ns, args.n)
        profiler = cProfile.Profile()
        profiler.enable()
        if api.is_async:
            seconds = loop.run_until_complete(timed_async(step, args.n))
        else:
            seconds = timed_sync(step, args.n)
        profiler.disable()
        for close in kind.closers:
            close()
    print(f"{args.contender} / {args.op}: {args.n / seconds:,.0f} calls/s under the profiler")
    pstats.Stats(profiler).strip_dirs().sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
