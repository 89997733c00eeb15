"""More than one app or Cache object in a process: CACHE_KEY_PREFIX is what keeps them apart."""

from __future__ import annotations

import uuid

from flask import Flask
from flask_caching import Cache

from tests.flask.apps import make_site
from tests.flask.conftest import KINDS, Harness
from tests.helpers import FakeClock


def test_two_apps_on_one_location_with_their_own_prefixes(shared_location: Harness) -> None:
    one = make_site(shared_location.config())
    two = make_site(shared_location.config())
    assert one.get("/cached") == "cached 1"
    assert two.get("/cached") == "cached 1"
    assert one.get("/cached") == two.get("/cached") == "cached 1"
    assert one.calls["cached"] == two.calls["cached"] == 1
    with one.app.app_context():
        assert one.cache.clear()
    assert one.get("/cached") == "cached 2"
    assert two.get("/cached") == "cached 1"
    assert two.calls["cached"] == 1


def test_apps_with_the_same_prefix_share_entries(shared_location: Harness) -> None:
    prefix = f"same{uuid.uuid4().hex[:8]}_"
    one = make_site(shared_location.config(prefix))
    two = make_site(shared_location.config(prefix))
    assert one.get("/cached") == "cached 1"
    assert two.get("/cached") == "cached 1"  # one's entry, as with Flask-Caching's backends
    assert two.calls["cached"] == 0
    with two.app.app_context():
        two.cache.clear()
    assert one.get("/cached") == "cached 2"


def test_two_cache_objects_on_one_app(shared_location: Harness) -> None:
    app = Flask("two_caches")
    app.config.update(DEBUG=True)
    first = Cache(app, config=shared_location.config())
    second = Cache(app, config=shared_location.config())
    with app.app_context():
        assert first.cache is not second.cache
        first.set("k", "first")
        second.set("k", "second")
        assert first.get("k") == "first"
        assert second.get("k") == "second"
        assert first.clear()
        assert first.get("k") is None
        assert second.get("k") == "second"


def test_one_cache_object_on_two_apps(shared_location: Harness) -> None:
    cache = Cache()
    apps = [Flask("app_a"), Flask("app_b")]
    for app in apps:
        cache.init_app(app, config=shared_location.config())
    for i, app in enumerate(apps):
        with app.app_context():
            cache.set("k", i)
    for i, app in enumerate(apps):
        with app.app_context():
            assert cache.get("k") == i
    with apps[0].app_context():
        cache.clear()
    with apps[1].app_context():
        assert cache.get("k") == 1


def test_memory_cache_stores_are_private_like_simple_cache() -> None:
    harness = Harness(KINDS["memory"], "", FakeClock())
    one = make_site(harness.config("same_"))
    two = make_site(harness.config("same_"))
    assert one.get("/cached") == "cached 1"
    assert two.get("/cached") == "cached 1"
    assert two.calls["cached"] == 1
    with one.app.app_context():
        one.cache.set("k", "one")
    with two.app.app_context():
        assert two.cache.get("k") is None
