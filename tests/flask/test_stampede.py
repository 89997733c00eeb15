"""CACHE_TSOT_STAMPEDE: Flask-Caching's cached and memoize compute a missing value once across
32 threads, on one tsot_flask class per storage kind; the CACHE_TSOT_* keys are checked."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.flask.conftest import Harness
from tests.stampede_support import BOUND, Gate, Waiters, eventually
from tsot import ConfigurationError, readthrough

N = 32


@pytest.fixture
def waiters(monkeypatch: pytest.MonkeyPatch) -> Waiters:
    w = Waiters()
    monkeypatch.setattr(readthrough, "DEFAULT_TIMING", w.timing(time.time))
    return w


def _concurrently(call: Any, gate: Gate, waiters: Waiters) -> list[Any]:
    barrier = threading.Barrier(N)

    def one() -> Any:
        barrier.wait(BOUND)
        return call()

    with ThreadPoolExecutor(N) as pool:
        futures = [pool.submit(one) for _ in range(N)]
        try:
            eventually(
                lambda: len(waiters.seen) >= N - 1 or any(f.done() for f in futures),
                f"{N - 1} waiters",
            )
            for f in futures:
                if f.done():
                    f.result()  # a call that failed: raise its error
            eventually(lambda: gate.calls == 1, "the first compute")
        finally:
            gate.release()
        return [f.result(BOUND) for f in futures]


def test_memoize_computes_once(per_storage: Harness, waiters: Waiters) -> None:
    app, cache = per_storage.app(CACHE_TSOT_STAMPEDE=True)
    gate = Gate("sync")

    @cache.memoize(60)
    def report(n: int) -> str:
        return f"{gate.fn()}-{n}"

    # memoize makes its version key on a first call, racily (concurrent first calls can make
    # different versions, so different keys): a first call made it, as in a running app
    gate.release()
    with app.app_context():
        assert report(1) == "v1-1"
    gate = Gate("sync")

    def call() -> str:
        with app.app_context():
            return report(7)

    assert _concurrently(call, gate, waiters) == ["v1-7"] * N
    assert gate.calls == 1
    with app.app_context():
        assert report(7) == "v1-7"
        assert report(1) == "v1-1"
        cache.clear()


def test_cached_view_renders_once(per_storage: Harness, waiters: Waiters) -> None:
    app, cache = per_storage.app(CACHE_TSOT_STAMPEDE=True)
    gate = Gate("sync", "page")

    @app.route("/report")
    @cache.cached(60)
    def view() -> str:
        return gate.fn()

    def call() -> bytes:
        return app.test_client().get("/report").data

    assert _concurrently(call, gate, waiters) == [b"page1"] * N
    assert gate.calls == 1
    with app.app_context():
        cache.clear()


def test_without_the_switch_every_miss_computes(per_storage: Harness) -> None:
    app, cache = per_storage.app()
    calls: list[int] = []

    @cache.memoize(60)
    def f() -> int:
        calls.append(1)
        return len(calls)

    with app.app_context():
        assert f() == 1 and f() == 1
        assert cache.cache._split is None  # plain get and set
        cache.clear()


def test_a_failed_compute_frees_the_lease_when_its_context_ends(
    per_storage: Harness, waiters: Waiters
) -> None:
    app, cache = per_storage.app(CACHE_TSOT_STAMPEDE=True, CACHE_TSOT_LEASE_TIMEOUT=30)
    fail = [True]

    @cache.memoize(60)
    def f() -> int:
        if fail[0]:
            raise RuntimeError("down")
        return 7

    with app.app_context():
        assert f.__name__  # memoize made its version key in a first context
    with app.app_context(), pytest.raises(RuntimeError):
        f()
    # another thread, while the failed caller's lease would still run for 30 s: no wait
    fail[0] = False

    def other() -> int:
        with app.app_context():
            return f()

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(other).result(BOUND) == 7
    assert not waiters.seen
    with app.app_context():
        cache.clear()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("CACHE_TSOT_STAMPEDE", "maybe"),
        ("CACHE_TSOT_GRACE", -1),
        ("CACHE_TSOT_BETA", "eager"),
        ("CACHE_TSOT_LEASE_TIMEOUT", 0),
    ],
)
def test_bad_keys_are_named(per_storage: Harness, key: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=key):
        per_storage.backend(**{"CACHE_TSOT_STAMPEDE": True, key: value})


def test_the_keys_reach_the_storage(per_storage: Harness) -> None:
    backend = per_storage.backend(
        CACHE_TSOT_STAMPEDE="true",
        CACHE_TSOT_GRACE=5,
        CACHE_TSOT_BETA=2,
        CACHE_TSOT_LEASE_TIMEOUT=3,
    )
    assert backend.storage.policy == (True, 5.0, 2.0, 3.0)


def test_a_callable_prefix_is_refused_by_name() -> None:
    from flask import Flask
    from flask_caching import Cache

    app = Flask("stampede_prefix")
    app.config.update(
        CACHE_TYPE="tsot_flask.MemoryCache",
        CACHE_KEY_PREFIX=lambda: "tenant_",
        CACHE_TSOT_STAMPEDE=True,
    )
    with pytest.raises(ConfigurationError, match="CACHE_TSOT_STAMPEDE"):
        Cache(app)


@pytest.mark.parametrize("through", ["cached", "memoize"])
def test_tsot_flask_cache_refreshes_in_the_background(
    per_storage: Harness, monkeypatch: pytest.MonkeyPatch, through: str
) -> None:
    # tsot_flask.Cache: the request that wins an early refresh is served the current value at
    # once, like every other; a thread computes the new value (once) and stores it
    import uuid

    from flask import Flask

    import tsot_flask
    from tsot.stampede import Timing

    clock = per_storage.clock
    # the draw 0.99 refreshes 10 + 10 * ln(100) = 56 s before the soft expiry of a 10 s compute
    monkeypatch.setattr(readthrough, "DEFAULT_TIMING", Timing(clock=clock, random=lambda: 0.99))
    app = Flask(f"flask_test_{uuid.uuid4().hex[:6]}")
    app.config.update(DEBUG=True, **per_storage.config(CACHE_TSOT_STAMPEDE=True))
    cache = tsot_flask.Cache(app)
    gate = Gate("sync", "page")
    first = [True]

    def compute() -> str:
        if first[0]:
            first[0] = False
            clock.advance(10)  # delta = 10 s
            return "page0"
        return str(gate.fn())

    if through == "cached":
        app.route("/report")(cache.cached(60)(compute))

        def read() -> str:
            return app.test_client().get("/report").text

    else:
        memoized = cache.memoize(60)(compute)

        def read() -> str:
            with app.app_context():
                return str(memoized())

    assert read() == "page0"
    # due: this draw's lead is 10 s * (1 + ln 100) = 56 s before the soft expiry (t = 70). Stay
    # within 60 s of the first call: before Flask-Caching 2.5, memoize's version key lives the
    # memoize timeout from before the first compute, and a new version is a new cache key
    clock.advance(5)
    assert read() == "page0"  # the winner: not blocked by the (closed) gate
    eventually(lambda: gate.calls == 1, "the background refresh start")
    assert read() == "page0"  # during the refresh: the current value, no second compute
    gate.release()
    eventually(lambda: read() == "page1", "the refreshed value")
    assert gate.calls == 1
    with app.app_context():
        cache.clear()


def test_a_failed_background_refresh_keeps_serving_and_backs_off(
    per_storage: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # tsot_flask.Cache: the refresh thread's compute raises; the value stays served, and the
    # lease is kept the backoff (1 s, not lease_timeout) so that readers do not start a
    # refresh on every read
    import uuid

    from flask import Flask

    import tsot_flask
    from tsot.readthrough import LEASE_SUFFIX
    from tsot.stampede import Timing

    clock = per_storage.clock
    monkeypatch.setattr(readthrough, "DEFAULT_TIMING", Timing(clock=clock, random=lambda: 0.99))
    app = Flask(f"flask_test_{uuid.uuid4().hex[:6]}")
    app.config.update(DEBUG=True, **per_storage.config(CACHE_TSOT_STAMPEDE=True))
    cache = tsot_flask.Cache(app)
    calls: list[int] = []

    @cache.memoize(60)
    def report() -> str:
        calls.append(1)
        if len(calls) == 1:
            clock.advance(10)  # delta = 10 s
            return "v1"
        raise RuntimeError("down")

    with app.app_context():
        assert report() == "v1"
        storage = cache.cache.storage
        lease = storage._keys.make(report.make_cache_key(report.uncached)) + LEASE_SUFFIX
    clock.advance(5)  # due, memoize's version key still alive (the test above)
    with app.app_context():
        assert report() == "v1"  # the winner: served; the refresh fails in its thread
    eventually(lambda: "background refresh" in caplog.text, "the failure logged")
    # the refresh thread's context ends: its lease is kept the backoff (lease_timeout is 10 s),
    # or is already over on a server (real time)
    eventually(lambda: storage.backend.ttl(lease) <= 1000, "the backoff")
    assert len(calls) == 2
    if per_storage.uses_clock:  # the backend's time stands still: the lease is still held
        assert storage.backend.ttl(lease) > 0
        with app.app_context():
            assert report() == "v1"  # still served, no second refresh
        assert len(calls) == 2
    with app.app_context():
        cache.clear()
