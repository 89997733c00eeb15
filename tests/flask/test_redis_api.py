"""django-redis's extra methods on the Flask-Caching backends (``cache.cache.ttl(key)``), on
each storage kind: Flask-Caching's timeouts in, django-redis's results out."""

from __future__ import annotations

import time

import pytest

from tests.flask.conftest import Harness
from tsot import LockNotOwnedError, NotSupportedError


def test_ttl_expire_persist(per_storage: Harness) -> None:
    app, cache = per_storage.app(CACHE_DEFAULT_TIMEOUT=300)
    with app.app_context():
        backend = cache.cache
        assert backend.ttl("missing") == 0 and backend.pttl("missing") == 0
        cache.set("k", 1, timeout=0)  # Flask-Caching: 0 = never expires
        assert backend.ttl("k") is None and backend.pttl("k") is None
        assert backend.expire("k", 100) is True
        assert 98 <= backend.ttl("k") <= 100
        assert 98_000 <= backend.pttl("k") <= 100_000
        assert backend.pexpire("k", 20_000) is True
        assert 18 <= backend.ttl("k") <= 20
        assert backend.expire("k", None) is True  # the default timeout
        assert 298 <= backend.ttl("k") <= 300
        assert backend.expire_at("k", int(time.time()) + 70) is True
        assert 67 <= backend.ttl("k") <= 70
        assert backend.pexpire_at("k", int(time.time() * 1000) + 40_000) is True
        assert 37 <= backend.ttl("k") <= 40
        assert backend.persist("k") is True
        assert backend.persist("k") is False
        assert backend.ttl("k") is None
        assert backend.expire("missing", 5) is False
        assert backend.expire("k", -1) is True
        assert cache.get("k") is None


def test_keys_and_delete_pattern(per_storage: Harness) -> None:
    app, cache = per_storage.app()
    other_app, other = per_storage.app()
    with app.app_context():
        if per_storage.kind.storage == "memcached":
            with pytest.raises(NotSupportedError, match="memcached"):
                cache.cache.keys()
            return
        cache.set_many({"user:1": 1, "user:2": 2, "page": 3})
        with other_app.app_context():
            other.set("user:9", 9)
        backend = cache.cache
        assert sorted(backend.keys("user:*")) == ["user:1", "user:2"]
        assert sorted(backend.iter_keys(itersize=1)) == ["page", "user:1", "user:2"]
        assert backend.delete_pattern("user:*") == 2
        assert backend.keys() == ["page"]
        with other_app.app_context():
            assert other.get("user:9") == 9


def test_lock(per_storage: Harness) -> None:
    app, cache = per_storage.app()
    with app.app_context():
        first = cache.cache.lock("job", timeout=30)
        fence = first.acquire(blocking=False)
        assert fence and cache.cache.lock("job").acquire(blocking=False) is False
        cache.delete("job")  # as if it expired
        second = cache.cache.lock("job", timeout=30)
        assert second.acquire(blocking=False) > fence
        with pytest.raises(LockNotOwnedError):
            first.release()
        second.release()
        with cache.cache.lock("job", timeout=30) as third:
            assert third.owned()
        assert not third.locked()
