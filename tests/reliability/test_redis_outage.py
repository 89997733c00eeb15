"""Redis killed or frozen under load: fail_open keeps a Django site up and recovers on its own.

Each test owns its server (``own_redis``), so killing, freezing and restarting it on the same
port disturbs nothing else. The crash tests run on Valkey too (``server_program``); a frozen
process is the same whatever it runs, so freezing is checked once per mode on Redis (and sync on
Valkey). The figures are printed (``pytest -s``) for docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.test import AsyncClient, Client, override_settings

from tests.reliability.load import Timeline, choreograph, task_worker, thread_worker
from tests.servers.proc import Server
from tests.servers.redis import REDIS, VALKEY, Program, each_program, url_of
from tsot import AsyncStorage, Storage
from tsot.errors import BackendUnavailable
from tsot_django import TsotCache

pytestmark = [pytest.mark.server, pytest.mark.slow]

TIMEOUT = 0.5  # socket_timeout and socket_connect_timeout of these tests
PROBE = 1.0  # probe_interval
OUTAGE = 2.5  # seconds the server stays down: probes fail in it, one lands after it
WORKERS = 8
SLACK = 1.5  # what a loaded 2-core CI machine may add to a bound: hangs are what is checked


def caches_setting(url: str, prefix: str, fail_open: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT}
    if fail_open:
        options.update(FAIL_OPEN=True, probe_interval=PROBE)
    return {
        "default": {
            "BACKEND": "tsot_django.TsotCache",
            "LOCATION": url,
            "KEY_PREFIX": prefix,
            "OPTIONS": options,
        }
    }


@pytest.fixture
def site(own_redis: Server, unique: str, server_program: Program) -> Iterator[TsotCache]:
    """Django settings for a site whose default cache is ``own_redis`` with fail_open."""
    setting = caches_setting(url_of(own_redis, server_program), unique, fail_open=True)
    with override_settings(CACHES=setting, ROOT_URLCONF="tests.reliability.site"):
        cache = caches["default"]
        assert isinstance(cache, TsotCache)
        yield cache


def restart(server: Server) -> None:
    server.start()  # the same argv: the same port, an empty database


FAULTS: dict[str, tuple[Callable[[Server], None], Callable[[Server], None]]] = {
    "kill": (Server.kill, restart),  # SIGKILL: a crash, then a restart on the same port
    "freeze": (lambda s: s.signal(signal.SIGSTOP), lambda s: s.signal(signal.SIGCONT)),
}


SITE_CASES = [
    *[(fault, mode, REDIS) for mode in ("sync", "async") for fault in sorted(FAULTS)],
    *[("kill", mode, VALKEY) for mode in ("sync", "async")],
]


@pytest.mark.parametrize(
    ("fault", "mode", "server_program"),
    SITE_CASES,
    ids=[f"{fault}-{mode}-{program.name}" for fault, mode, program in SITE_CASES],
)
async def test_fail_open_site_serves_every_request_through_an_outage(
    site: TsotCache,
    own_redis: Server,
    fault: str,
    mode: str,
    server_program: Program,
    caplog: pytest.LogCaptureFixture,
) -> None:
    out = Timeline()
    stop = threading.Event()
    inject, restore = FAULTS[fault]
    scene = asyncio.to_thread(
        choreograph,
        out,
        WORKERS,
        lambda: inject(own_redis),
        lambda: restore(own_redis),
        OUTAGE,
        PROBE + SLACK + 3,
    )
    if mode == "sync":  # 8 threads, each with its own Django test Client
        threads = [
            threading.Thread(target=thread_worker, args=("/page/", out, stop))
            for _ in range(WORKERS)
        ]
        for t in threads:
            t.start()
        try:
            await scene
        finally:
            stop.set()
            for t in threads:
                t.join(10)
    else:  # 8 tasks on this loop, each with its own AsyncClient (aget/aset, no thread hop)
        tasks = [asyncio.create_task(task_worker("/apage/", out, stop)) for _ in range(WORKERS)]
        try:
            await scene
        finally:
            stop.set()
            await asyncio.gather(*tasks)

    samples = out.snapshot()
    failed = [s for s in samples if s.error is not None]
    assert not failed, failed[:3]  # no request failed, before, during or after
    worst = max(s.latency for s in samples)
    assert worst <= TIMEOUT + SLACK  # at most one timeout per request, never a hang
    during = out.during()
    assert len(during) >= WORKERS  # the site kept serving while Redis was out
    recovery = out.recovery()
    assert recovery is not None and recovery <= PROBE + SLACK  # back within the probe interval
    breaker = site.storage.backend.breaker  # type: ignore[attr-defined]
    # a dead server costs one call per probe interval, plus the calls in flight when it died
    assert 1 <= breaker.failures <= WORKERS + math.ceil(OUTAGE / PROBE) + 2
    # logged at a bounded rate: a few lines for thousands of failed or skipped calls
    logged = [r for r in caplog.records if r.name == "tsot"]
    assert len(logged) <= 4, [r.getMessage() for r in logged]
    print(
        f"\n{server_program.name} {fault}, {mode}, {WORKERS} workers: {len(samples)} requests, "
        f"{len(during)} during the {OUTAGE} s outage, all 200; worst latency "
        f"{worst * 1000:.0f} ms (timeout {TIMEOUT * 1000:.0f} ms); recovery {recovery:.3f} s "
        f"(probe interval {PROBE} s); {breaker.failures} calls reached the dead server"
    )


@each_program
def test_without_fail_open_django_raises_backend_unavailable(
    own_redis: Server, server_program: Program
) -> None:
    setting = caches_setting(url_of(own_redis, server_program), "nofo", fail_open=False)
    with override_settings(CACHES=setting, ROOT_URLCONF="tests.reliability.site"):
        cache = caches["default"]
        assert Client().get("/page/").status_code == 200
        own_redis.kill()
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="is unavailable"):
            cache.get("page")
        assert time.monotonic() - started <= TIMEOUT + SLACK
        with pytest.raises(BackendUnavailable):
            cache.set("page", "x")
        with pytest.raises(BackendUnavailable):
            Client().get("/page/")  # the view's error, as Django's own RedisCache raises it
        assert Client(raise_request_exception=False).get("/page/").status_code == 500


@each_program
async def test_without_fail_open_django_async_api_raises_backend_unavailable(
    own_redis: Server, server_program: Program
) -> None:
    setting = caches_setting(url_of(own_redis, server_program), "nofo", fail_open=False)
    with override_settings(CACHES=setting, ROOT_URLCONF="tests.reliability.site"):
        cache = caches["default"]
        await cache.aset("k", "v")
        own_redis.kill()
        for call in (cache.aget("k"), cache.aset("k", "w"), cache.aincr("k")):
            with pytest.raises(BackendUnavailable):
                await call
        with pytest.raises(BackendUnavailable):
            await AsyncClient().get("/apage/")


@each_program
def test_fail_open_incr_still_raises(site: TsotCache, own_redis: Server) -> None:
    site.set("n", 1)
    own_redis.kill()
    assert site.get("n") is None  # a miss
    with pytest.raises(BackendUnavailable):  # no number can be made up: documented
        site.incr("n")


# -- frozen Redis (SIGSTOP), core API ----------------------------------------------------------


FROZEN_CASES = [("sync", REDIS), ("async", REDIS), ("sync", VALKEY)]


@pytest.mark.parametrize(
    ("mode", "server_program"),
    FROZEN_CASES,
    ids=[f"{mode}-{program.name}" for mode, program in FROZEN_CASES],
)
def test_frozen_redis_calls_end_at_the_read_timeout_then_it_works_again(
    own_redis: Server, mode: str, server_program: Program, loop_thread: Any
) -> None:
    from tests.helpers import SyncView

    url = url_of(own_redis, server_program)
    opts: dict[str, Any] = {"namespace": "frozen", "socket_timeout": TIMEOUT}
    store: Any = (
        Storage.from_url(url, **opts)
        if mode == "sync"
        else SyncView(AsyncStorage.from_url(url, **opts), loop_thread)
    )
    store.store("k", "before")
    store.store("n", 1)
    own_redis.signal(signal.SIGSTOP)
    try:
        timings: dict[str, float] = {}
        calls: dict[str, Callable[[], Any]] = {
            "load": lambda: store.load("k"),
            "store": lambda: store.store("other", "during"),
            "incr": lambda: store.incr("n"),
            "load_many": lambda: store.load_many(["k", "n"]),
        }
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises(BackendUnavailable, match=r"[Tt]imeout"):
                call()
            timings[name] = time.monotonic() - started
            assert TIMEOUT * 0.9 <= timings[name] <= TIMEOUT + SLACK, (name, timings[name])
    finally:
        own_redis.signal(signal.SIGCONT)
    assert store.load("k") == "before"  # the same Storage works again at once
    assert store.load("n") in (1, 2)  # a timed-out write is unknown: the server may apply it
    store.store("k", "after")
    assert store.load("k") == "after"
    print(
        f"\n{server_program.name} SIGSTOP, {mode}, socket_timeout {TIMEOUT} s: "
        + ", ".join(f"{k} {v:.3f} s" for k, v in timings.items())
    )


# -- Flask ---------------------------------------------------------------------------------------


def flask_app(port: int, prefix: str, fail_open: bool, debug: bool = False) -> Any:
    from flask import Flask
    from flask_caching import Cache

    options: dict[str, Any] = {"socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT}
    if fail_open:
        options.update(fail_open=True, probe_interval=PROBE)
    app = Flask(f"outage_{prefix}")
    app.config.update(
        DEBUG=debug,
        CACHE_TYPE="tsot_flask.RedisCache",
        CACHE_REDIS_URL=f"redis://127.0.0.1:{port}/0",
        CACHE_KEY_PREFIX=prefix,
        CACHE_OPTIONS=options,
    )
    cache = Cache(app)
    renders = iter(range(1, 1_000_000))

    @app.route("/")
    @cache.cached(timeout=60)
    def index() -> str:
        return f"render {next(renders)}"

    app.extensions["outage_cache"] = cache
    return app


def test_flask_fail_open_serves_misses_then_caches_again(
    own_redis: Server, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = flask_app(own_redis.port, unique, fail_open=True)
    cache = app.extensions["outage_cache"]
    client = app.test_client()
    first = client.get("/").text
    assert client.get("/").text == first  # cached
    own_redis.kill()
    with app.app_context():
        assert cache.get("missing") is None  # a miss, not an error
        assert cache.add("x", 1) is False
    during = {client.get("/").text for _ in range(5)}
    assert len(during) == 5  # every request rendered afresh, none failed
    assert "Exception possibly due to cache backend" not in caplog.text
    own_redis.start()
    back = time.monotonic()
    deadline = back + PROBE + SLACK
    while True:  # bounded: the breaker's probe interval is the point
        body = client.get("/").text
        if client.get("/").text == body:
            break
        assert time.monotonic() < deadline, "the cache was not used again within the interval"
        time.sleep(0.05)
    print(f"\nflask fail_open: cached again {time.monotonic() - back:.3f} s after the restart")


def test_flask_without_fail_open_logs_and_runs_the_view(
    own_redis: Server, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = flask_app(own_redis.port, unique, fail_open=False)
    cache = app.extensions["outage_cache"]
    client = app.test_client()
    client.get("/")
    own_redis.kill()
    with app.app_context(), pytest.raises(BackendUnavailable):
        cache.get("k")  # the backend raises (docs/flask.md: errors raise)
    response = client.get("/")  # Flask-Caching's decorator logs the error and runs the view
    assert response.status_code == 200 and response.text.startswith("render")
    assert "Exception possibly due to cache backend" in caplog.text
    assert any(isinstance(r.exc_info[1], BackendUnavailable) for r in caplog.records if r.exc_info)
    debug = flask_app(own_redis.port, unique, fail_open=False, debug=True)
    with pytest.raises(BackendUnavailable):  # debug mode re-raises, as Flask-Caching does
        debug.test_client().get("/")
