"""Flask-Caching's blinker signals fire with tsot backends; CACHE_OPTIONS turns on metrics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask_caching import Cache

from tests.flask.apps import _flask_caching_version

pytestmark = pytest.mark.skipif(
    _flask_caching_version() < (2, 5),
    reason="CACHE_ENABLE_SIGNALS and its blinker signals came with Flask-Caching 2.5",
)


@pytest.fixture(params=["memory", "redis"])
def app_cache(request: pytest.FixtureRequest) -> Iterator[tuple[Flask, Cache]]:
    url = (
        f"memory://signals-{uuid.uuid4().hex}"
        if request.param == "memory"
        else str(request.getfixturevalue("redis_url"))
    )
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="flask-signal-tests-secret",
        CACHE_TYPE="tsot_flask.TsotCache",
        CACHE_TSOT_URL=url,
        CACHE_KEY_PREFIX=f"sig{uuid.uuid4().hex[:8]}",
        CACHE_ENABLE_SIGNALS=True,
        CACHE_OPTIONS={"metrics": "stats", "label": "flask-signals"},
    )
    cache = Cache(app)
    yield app, cache
    with app.app_context():
        cache.clear()


def test_view_and_memoize_signals(app_cache: tuple[Flask, Cache]) -> None:
    from flask_caching import (
        cache_memoize_hit,
        cache_memoize_miss,
        cache_view_hit,
        cache_view_miss,
    )

    app, cache = app_cache
    seen: list[tuple[str, Any]] = []

    @app.route("/page")
    @cache.cached(timeout=60)
    def page() -> str:
        return "page"

    @cache.memoize(timeout=60)
    def square(n: int) -> int:
        return n * n

    def recorder(name: str) -> Any:
        def receive(sender: Any, **kwargs: Any) -> None:
            seen.append((name, kwargs["cache_key"]))

        return receive

    receivers = {
        name: recorder(name) for name in ("view_miss", "view_hit", "memoize_miss", "memoize_hit")
    }
    cache_view_miss.connect(receivers["view_miss"])
    cache_view_hit.connect(receivers["view_hit"])
    cache_memoize_miss.connect(receivers["memoize_miss"])
    cache_memoize_hit.connect(receivers["memoize_hit"])
    try:
        client = app.test_client()
        assert client.get("/page").get_data(as_text=True) == "page"
        assert client.get("/page").get_data(as_text=True) == "page"
        with app.app_context():
            assert square(4) == 16
            assert square(4) == 16
    finally:
        cache_view_miss.disconnect(receivers["view_miss"])
        cache_view_hit.disconnect(receivers["view_hit"])
        cache_memoize_miss.disconnect(receivers["memoize_miss"])
        cache_memoize_hit.disconnect(receivers["memoize_hit"])
    assert [name for name, _ in seen] == ["view_miss", "view_hit", "memoize_miss", "memoize_hit"]
    assert seen[0][1] == seen[1][1] and seen[2][1] == seen[3][1]
    with app.app_context():
        ops = cache.cache.storage.stats()["operations"]
    # the view's two reads plus memoize's reads: every hit and miss the signals saw is counted
    assert ops["get"]["hits"] >= 2 and ops["get"]["misses"] >= 2
