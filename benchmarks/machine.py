"""What the figures came from: CPU, cores, Python, library and server versions, git commit."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = (
    "tsot", "Django", "redis", "hiredis", "pymemcache", "rocksdict", "django-redis",
    "Flask", "Flask-Caching", "cachelib", "diskcache",
)  # fmt: skip


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _output(*argv: str) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (
        (done.stdout or done.stderr).strip().splitlines()[0] if done.stdout or done.stderr else ""
    )


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> dict[str, Any]:
    """The machine, the software and the commit of this run."""
    commit = _output("git", "rev-parse", "--short", "HEAD")
    dirty = _output("git", "status", "--porcelain", "--untracked-files=no")
    return {
        "cpu": _cpu_model(),
        "nproc": len(os.sched_getaffinity(0)),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "libraries": {name: _version(name) for name in LIBRARIES},
        "servers": {
            "redis-server": _output("redis-server", "--version"),
            "memcached": _output("memcached", "-V"),
        },
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
    }
