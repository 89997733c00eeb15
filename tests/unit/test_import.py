"""Importing tsot must not import any optional driver."""

from __future__ import annotations

import subprocess
import sys

DRIVERS = (
    "redis",
    "hiredis",
    "pymemcache",
    "rocksdict",
    "django",
    "flask",
    "msgpack",
    "zstandard",
    "lz4",
)


def test_import_tsot_imports_no_driver() -> None:
    code = (
        "import sys, tsot\n"
        "s = tsot.Storage.new_imc(); s.store('k', {'a': 1}); assert s.load('k') == {'a': 1}\n"
        f"print([m for m in {DRIVERS!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
