"""Each backend family is a package under tsot/backends/ (docs/architecture.md): its
public names import from the package, are the backend module's own, and come on first use."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("family", "name"),
    [
        ("redis", "RedisBackend"),
        ("memcached", "MemcachedBackend"),
        ("rocksdb", "RocksDBBackend"),
        ("rocksdb", "close_database"),
    ],
)
def test_the_package_gives_the_backend_modules_names(family: str, name: str) -> None:
    package = importlib.import_module(f"tsot.backends.{family}")
    backend = importlib.import_module(f"tsot.backends.{family}.backend")
    assert getattr(package, name) is getattr(backend, name)
    assert name in package.__all__


def test_an_unknown_name_is_an_attribute_error() -> None:
    import tsot.backends.redis

    with pytest.raises(AttributeError, match="nope"):
        tsot.backends.redis.nope  # noqa: B018


def _run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_one_module_imports_no_backend() -> None:
    """Importing one module of a package imports neither the backend nor its driver."""
    out = _run(
        "import sys\n"
        "import tsot.backends.redis.config, tsot.backends.memcached.protocol\n"
        "import tsot.backends.rocksdb.handle\n"
        "print(sorted(m for m in sys.modules if m.endswith('.backend') or m == 'rocksdict'))"
    )
    assert out == "[]"


def test_redis_inside_the_package_is_redis_py() -> None:
    """``import redis`` in tsot/backends/redis/ is the driver (absolute imports), not tsot's."""
    import redis

    from tsot.backends.redis import transport_sync

    assert transport_sync.redis is redis
    assert not redis.__name__.startswith("tsot")
    assert hasattr(redis, "Redis")
