"""A pickle planted in Redis behind tsot's back is never unpickled by a signing reader.

Each payload, if unpickled, creates a directory. It is written with redis-py under the exact key
each adapter reads (Django: namespace + make_key with KEY_PREFIX and VERSION; Flask: its prefix;
core: the namespace), then read through that adapter: the read is a miss, a warning is logged,
and the directory does not exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import pickle
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.test import override_settings

from tsot import AsyncStorage, Storage

pytestmark = [pytest.mark.server, pytest.mark.usefixtures("every_warning")]


class Plant:
    """Unpickling this runs ``os.mkdir(path)``: the proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return (os.mkdir, (self.path,))


def payloads(path: Path) -> dict[str, bytes]:
    """The planted bytes: tag ``p`` unsigned, and a forged ``h`` signature, plain and zlib'd."""
    body = b"p" + pickle.dumps(Plant(path), 5)
    forged = hashlib.sha256(b"not the secret").digest()  # 32 bytes, the MAC's size
    return {
        "unsigned": body,
        "unsigned-zlib": b"z" + zlib.compress(body),
        "forged": b"h" + forged + body,
        "forged-zlib": b"h" + forged + b"z" + zlib.compress(body),
    }


WARNINGS = {
    "unsigned": "without a signature",
    "unsigned-zlib": "without a signature",
    "forged": "signature does not match",
    "forged-zlib": "signature does not match",
}


def test_the_payload_is_live(
    raw: redis.Redis[bytes], url: str, tmp_path: Path, unique: str
) -> None:
    """Control: a reader with signing off does run it, so the other tests' misses mean something."""
    target = tmp_path / "ran"
    raw.set(f"{unique}:k".encode(), payloads(target)["unsigned"])
    Storage.from_url(url, namespace=unique).load("k")
    assert target.is_dir()


def check(
    caplog: pytest.LogCaptureFixture, target: Path, kind: str, got: Any, miss: Any = None
) -> None:
    assert got == miss, got
    assert not target.exists(), f"the planted {kind} payload ran"
    logged = [r.getMessage() for r in caplog.records if r.name == "tsot"]
    assert any(WARNINGS[kind] in m for m in logged), logged
    caplog.clear()


@pytest.mark.parametrize("kind", sorted(WARNINGS))
def test_django(
    raw: redis.Redis[bytes],
    url: str,
    tmp_path: Path,
    unique: str,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "tsot")
    setting = {
        "default": {
            "BACKEND": "tsot_django.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": unique,
            "VERSION": 3,
            "OPTIONS": {"namespace": "ns"},
        }
    }
    final = f"ns:{unique}:3:k".encode()
    target = tmp_path / "ran"
    with override_settings(CACHES=setting):
        cache = caches["default"]
        cache.set("k", {"legit": 1})
        assert raw.exists(final) == 1  # the key below is the one Django reads
        raw.set(final, payloads(target)[kind])
        check(caplog, target, kind, cache.get("k"))
        check(caplog, target, kind, cache.get("k", "default"), "default")
        check(caplog, target, kind, cache.get_many(["k"]), {})
        check(caplog, target, kind, asyncio.run(cache.aget("k")))


@pytest.mark.parametrize("kind", sorted(WARNINGS))
def test_flask(
    raw: redis.Redis[bytes],
    url: str,
    tmp_path: Path,
    unique: str,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from flask import Flask
    from flask_caching import Cache

    caplog.set_level(logging.WARNING, "tsot")
    app = Flask("planted")
    app.config.update(
        SECRET_KEY="flask-secret-for-tests",
        CACHE_TYPE="tsot_flask.RedisCache",
        CACHE_REDIS_URL=url,
        CACHE_KEY_PREFIX=unique,
    )
    cache = Cache(app)
    final = f"{unique}:k".encode()
    target = tmp_path / "ran"
    with app.app_context():
        cache.set("k", {"legit": 1})
        assert raw.exists(final) == 1
        raw.set(final, payloads(target)[kind])
        check(caplog, target, kind, cache.get("k"))
        check(caplog, target, kind, cache.get_many("k"), [None])


@pytest.mark.parametrize("kind", sorted(WARNINGS))
def test_core(
    raw: redis.Redis[bytes],
    url: str,
    tmp_path: Path,
    unique: str,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "tsot")
    store = Storage.from_url(url, namespace=unique, secret="core-secret-for-tests")
    final = f"{unique}:k".encode()
    target = tmp_path / "ran"
    store.store("k", {"legit": 1})
    assert raw.exists(final) == 1
    raw.set(final, payloads(target)[kind])
    check(caplog, target, kind, store.load("k"))
    check(caplog, target, kind, store.load_many(["k"]), {})

    async def aload() -> Any:
        return await AsyncStorage.from_url(
            url, namespace=unique, secret="core-secret-for-tests"
        ).load("k")

    check(caplog, target, kind, asyncio.run(aload()))
