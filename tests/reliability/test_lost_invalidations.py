"""Invalidation fails closed under fail_open: a logout while Redis is frozen must not succeed.

A Django site keeps its sessions in a tsot cache with ``FAIL_OPEN``. Redis is frozen with
SIGSTOP, the user logs out (``session.flush()`` deletes the session from the cache), Redis is
resumed. Before tsot raised on invalidations, the logout "succeeded" and the old session cookie
was logged in again once Redis was back. Now the logout raises BackendUnavailable (a 500 the
user sees), unless ``fail_open_invalidation`` asks for the old behaviour, which is then counted.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.core.cache import caches
from django.test import AsyncClient, Client, override_settings

from tests.helpers import SyncView
from tests.servers.memcached import start_memcached
from tests.servers.proc import Server
from tests.servers.redis import start_single
from tsot import AsyncStorage, Storage
from tsot.errors import BackendUnavailable
from tsot_django import TsotCache

pytestmark = pytest.mark.server

ASYNC_SESSIONS = pytest.param(
    "async",
    marks=pytest.mark.skipif(
        django.VERSION < (5, 1), reason="Django's async session API (aflush) arrived in 5.1"
    ),
)

TIMEOUT = 0.5


def session_settings(port: int, prefix: str, skip_invalidation: bool) -> dict[str, Any]:
    options: dict[str, Any] = {
        "FAIL_OPEN": True,
        "probe_interval": 60,  # no probe during a test: once open, the breaker stays open
        "socket_timeout": TIMEOUT,
        "socket_connect_timeout": TIMEOUT,
    }
    if skip_invalidation:
        options["FAIL_OPEN_INVALIDATION"] = True
    location = f"redis://127.0.0.1:{port}/0"
    return {
        "CACHES": {
            "default": {
                "BACKEND": "tsot_django.TsotCache",
                "LOCATION": location,
                "KEY_PREFIX": prefix,
                "OPTIONS": options,
            },
            # the same keys without fail_open: what Redis really holds
            "plain": {
                "BACKEND": "tsot_django.TsotCache",
                "LOCATION": location,
                "KEY_PREFIX": prefix,
            },
        },
        "SESSION_ENGINE": "django.contrib.sessions.backends.cache",
        "SESSION_CACHE_ALIAS": "default",
        "MIDDLEWARE": ["django.contrib.sessions.middleware.SessionMiddleware"],
        "ROOT_URLCONF": "tests.reliability.session_site",
    }


@pytest.fixture
def frozen(own_redis: Server) -> Iterator[Server]:
    """``own_redis``, resumed after the test whatever happens."""
    yield own_redis
    own_redis.signal(signal.SIGCONT)


class Browser:
    """A Django test client, sync or async, behind one awaitable ``get``."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.client: Any = Client() if mode == "sync" else AsyncClient()
        self.session_key = ""

    async def get(self, url: str) -> Any:
        response = self.client.get(url)
        return await response if self.mode == "async" else response

    async def logout(self) -> Any:
        return await self.get("/logout/" if self.mode == "sync" else "/alogout/")

    def session_in_redis(self) -> Any:
        """The session of the cookie the browser got at login (a logout deletes the cookie)."""
        return caches["plain"].get("django.contrib.sessions.cache" + self.session_key)


async def log_in_then_freeze(browser: Browser, redis: Server) -> None:
    """Log in, freeze Redis, and let one read meet the outage: the breaker opens.

    (Not a session read: a session that misses is dropped and its cookie deleted, so the
    logout would have nothing to delete.)
    """
    await browser.get("/login/")
    assert (await browser.get("/whoami/")).json() == {"user": "alice"}
    browser.session_key = browser.client.cookies["sessionid"].value
    redis.signal(signal.SIGSTOP)
    if browser.mode == "sync":
        assert caches["default"].get("page") is None  # a miss, after one timeout
    else:
        assert await caches["default"].aget("page") is None


@pytest.mark.parametrize("mode", ["sync", ASYNC_SESSIONS])
async def test_logout_while_redis_is_frozen_raises(frozen: Server, unique: str, mode: str) -> None:
    with override_settings(**session_settings(frozen.port, unique, skip_invalidation=False)):
        cache = caches["default"]
        assert isinstance(cache, TsotCache)
        browser = Browser(mode)
        await log_in_then_freeze(browser, frozen)
        with pytest.raises(BackendUnavailable, match=r"circuit open.*delete"):
            await browser.logout()  # at once (the breaker is open), and not skipped
        frozen.signal(signal.SIGCONT)
        assert cache.storage.stats()["skipped_writes"] == 0
        assert browser.session_in_redis() == {"user": "alice"}  # the user was told it failed


@pytest.mark.parametrize("mode", ["sync", ASYNC_SESSIONS])
async def test_fail_open_invalidation_skips_the_logout_and_counts_it(
    frozen: Server, unique: str, mode: str
) -> None:
    """The opt-in keeps the old behaviour, now counted: the logout "succeeds", and the old
    session is valid again after the outage (what docs/reliability.md warns about)."""
    with override_settings(**session_settings(frozen.port, unique, skip_invalidation=True)):
        cache = caches["default"]
        assert isinstance(cache, TsotCache)
        browser = Browser(mode)
        await log_in_then_freeze(browser, frozen)
        assert (await browser.logout()).status_code == 200
        frozen.signal(signal.SIGCONT)
        assert cache.storage.stats()["skipped_writes"] == 1
        assert cache.storage.stats()["short_circuited"] >= 1
        assert browser.session_in_redis() == {"user": "alice"}


# -- core and Flask, on a killed server ------------------------------------------------------------

INVALIDATIONS: dict[str, Callable[[Any], Any]] = {
    "delete": lambda s: s.delete("k"),
    "delete_many": lambda s: s.delete_many(["k", "j"]),
    "clear": lambda s: s.clear(),
    "expire": lambda s: s.expire("k", 60),
    "persist": lambda s: s.persist("k"),
    "store ttl=0": lambda s: s.store("k", 1, ttl=0),
    "incr": lambda s: s.incr("n"),
}


def dead_server(kind: str, tmp_path: Path) -> str:
    """The URL of a server that was started and then killed."""
    server = (
        start_single(tmp_path / "redis") if kind == "redis" else start_memcached(tmp_path, "dead")
    )
    url = f"{kind}://127.0.0.1:{server.port}" + ("/0" if kind == "redis" else "")
    server.kill()
    return url


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_core_invalidations_raise_unless_opted_in(
    kind: str, mode: str, tmp_path: Path, loop_thread: Any
) -> None:
    url = dead_server(kind, tmp_path)
    opts: dict[str, Any] = {"fail_open": True, "probe_interval": 60, "retries": 0}

    def storage(**more: Any) -> Any:
        if mode == "sync":
            return Storage.from_url(url, **opts, **more)
        return SyncView(AsyncStorage.from_url(url, **opts, **more), loop_thread)

    store = storage()
    assert store.load("k") is None  # reads fail open: the breaker opens here
    store.store("k", 1)  # writes are skipped
    for call in INVALIDATIONS.values():
        with pytest.raises(BackendUnavailable, match="circuit open"):
            call(store)  # at once, and never skipped silently
    counts = store.stats()
    assert counts["skipped_writes"] == 1 and counts["outage_misses"] == 1
    opted = storage(fail_open_invalidation=True)
    skipped = {name: call(opted) for name, call in INVALIDATIONS.items() if name != "incr"}
    assert skipped == {
        "delete": False,
        "delete_many": 0,
        "clear": None,
        "expire": False,
        "persist": False,
        "store ttl=0": None,
    }
    with pytest.raises(BackendUnavailable):
        opted.incr("n")  # no number can be made up, whatever the option
    assert opted.stats()["skipped_writes"] == 1 + len(skipped)  # shared per URL: both counted


def test_flask_invalidations_raise_unless_opted_in(tmp_path: Path) -> None:
    from flask import Flask
    from flask_caching import Cache

    url = dead_server("redis", tmp_path)
    caches_: dict[bool, Any] = {}
    for opted in (False, True):
        app = Flask(f"inv{opted}")
        app.config.update(
            CACHE_TYPE="tsot_flask.TsotCache",
            CACHE_TSOT_URL=url,
            CACHE_OPTIONS={
                "fail_open": True,
                "fail_open_invalidation": opted,
                "probe_interval": 60,
                "retries": 0,
            },
        )
        caches_[opted] = (app, Cache(app))
    app, cache = caches_[False]
    with app.app_context():
        assert cache.get("k") is None
        assert cache.set("k", 1) is True
        for call in (
            lambda: cache.delete("k"),
            lambda: cache.clear(),
            lambda: cache.cache.inc("n"),
        ):
            with pytest.raises(BackendUnavailable):
                call()
    app, cache = caches_[True]
    with app.app_context():
        assert cache.delete("k") is False
        assert cache.delete_many("k", "j") == ["k", "j"]
        assert cache.clear() is True


def test_each_backend_outage_and_recovery_is_logged_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two backends down at once, then back: four lines, each naming its backend (the rate
    limit used to be per kind of message for the whole process: the second outage was never
    logged and the recovery line named no backend)."""
    servers = [
        start_single(tmp_path / "redis", "--requirepass", "pw-9f1c7e"),
        start_memcached(tmp_path, "logged"),
    ]
    urls = [
        f"redis://:pw-9f1c7e@127.0.0.1:{servers[0].port}/0",
        f"memcached://127.0.0.1:{servers[1].port}?dead_timeout=0",
    ]
    try:
        stores = [Storage.from_url(u, fail_open=True, probe_interval=0, retries=0) for u in urls]
        with caplog.at_level(logging.WARNING, logger="tsot"):
            for server in servers:
                server.kill()
            for store in stores:
                assert store.load("k") is None
            for server in servers:
                server.start()
            for store in stores:
                assert store.load("k") is None  # the probe: a real miss, and the breaker closes
        lines = [r.getMessage() for r in caplog.records if r.name == "tsot"]
        shown = ["redis://:***@127.0.0.1", f"memcached://127.0.0.1:{servers[1].port}"]
        for name in shown:
            assert sum(name in line and " failed " in line for line in lines) == 1, lines
            assert sum(name in line and "reachable again" in line for line in lines) == 1, lines
        assert not any("pw-9f1c7e" in line for line in lines)
    finally:
        for server in servers:
            server.stop()
