"""Flask-Caching config keys: what each class reads, the errors that name a bad key, secrets."""

from __future__ import annotations

import logging
import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_caching import Cache

from tsot import ConfigurationError
from tsot.codec import Codec, Signer
from tsot_flask import MemcachedCache, MemoryCache, RedisCache, RocksDBCache, TsotCache
from tsot_flask.config import Settings

PASSWORD = "hunter2-p@ss/word"


def settings(cls: type[TsotCache], args: list[Any] | None = None, **config: Any) -> Settings:
    """What ``cls`` reads from ``config`` with Flask-Caching's defaults (as init_app sets them)."""
    config.setdefault("CACHE_KEY_PREFIX", "flask_cache_")
    options = config.get("CACHE_OPTIONS") or {}
    kwargs = {
        "default_timeout": config.get("CACHE_DEFAULT_TIMEOUT", 300),
        "ignore_delete_many_errors": config.get("CACHE_IGNORE_ERRORS", False),
        **options,
    }
    return cls.settings(config, args or [], kwargs)


def init(**config: Any) -> Cache:
    """Flask-Caching's real init path (Cache.init_app calling factory) on a fresh app."""
    app = Flask(f"cfg_{uuid.uuid4().hex[:6]}")
    app.config.update(config)
    return Cache(app)


def error_text(exc: BaseException) -> str:
    """The messages of ``exc`` and everything it was raised from."""
    parts = []
    current: BaseException | None = exc
    while current is not None:
        parts.append(f"{current!s} {current!r}")
        current = current.__cause__ or current.__context__
    return " ".join(parts)


class TestTsotCache:
    def test_url_and_options(self) -> None:
        s = settings(
            TsotCache,
            CACHE_TSOT_URL="memory://x",
            CACHE_OPTIONS={"max_entries": 5, "compression": "zlib"},
            CACHE_DEFAULT_TIMEOUT=60,
            CACHE_KEY_PREFIX="app_",
        )
        assert s.url == "memory://x"
        assert s.default_timeout == 60
        assert s.options["namespace"] == "app_"
        assert s.options["max_entries"] == 5 and s.options["compression"] == "zlib"

    def test_url_from_cache_args(self) -> None:
        assert settings(TsotCache, ["memory://y"]).url == "memory://y"
        with pytest.raises(ConfigurationError, match="CACHE_ARGS"):
            settings(TsotCache, ["memory://y"], CACHE_TSOT_URL="memory://z")

    def test_missing_url_names_the_key(self) -> None:
        with pytest.raises(ConfigurationError, match=r"CACHE_TSOT_URL.*not set"):
            init(CACHE_TYPE="tsot_flask.TsotCache")

    def test_bad_url_names_the_key(self) -> None:
        with pytest.raises(ConfigurationError, match=r"CACHE_TSOT_URL.*bogus"):
            init(CACHE_TYPE="tsot_flask.TsotCache", CACHE_TSOT_URL="bogus://x")
        with pytest.raises(ConfigurationError, match=r"CACHE_TSOT_URL.*no scheme"):
            init(CACHE_TYPE="tsot_flask.TsotCache", CACHE_TSOT_URL="just-a-host")

    def test_unknown_option_names_cache_options(self) -> None:
        with pytest.raises(ConfigurationError, match=r"CACHE_OPTIONS.*'no_such_option'"):
            init(
                CACHE_TYPE="tsot_flask.TsotCache",
                CACHE_TSOT_URL="memory://x",
                CACHE_OPTIONS={"no_such_option": 1},
            )
        with pytest.raises(ConfigurationError, match=r"CACHE_OPTIONS.*'max_entries'"):
            init(
                CACHE_TYPE="tsot_flask.TsotCache",
                CACHE_TSOT_URL="memory://x",
                CACHE_OPTIONS={"max_entries": "lots"},
            )

    def test_url_query_option_errors_name_the_url_key(self) -> None:
        with pytest.raises(ConfigurationError, match=r"CACHE_TSOT_URL.*'nope'"):
            init(CACHE_TYPE="tsot_flask.TsotCache", CACHE_TSOT_URL="memory://x?nope=1")

    def test_the_key_to_blame_comes_from_the_error_not_its_text(self) -> None:
        # the message quotes 'secret' (the bad value), which came from SECRET_KEY in other
        # errors: the option at fault is 'accept', given in the URL
        with pytest.raises(ConfigurationError, match=r"invalid CACHE_TSOT_URL .*'accept'"):
            init(
                CACHE_TYPE="tsot_flask.TsotCache",
                CACHE_TSOT_URL="memory://x?accept=secret",
                SECRET_KEY="a-secret-key-of-24-bytes",
            )
        # a backend's own cross-check (redis.local) names an option from CACHE_OPTIONS
        with pytest.raises(ConfigurationError, match=r"invalid CACHE_OPTIONS .*'local_clock'"):
            init(
                CACHE_TYPE="tsot_flask.TsotCache",
                CACHE_TSOT_URL="redis://127.0.0.1:1/0",
                CACHE_OPTIONS={"local_cache": True, "local_clock": 5},
            )

    @pytest.mark.parametrize(
        ("name", "key"),
        [
            ("namespace", "CACHE_KEY_PREFIX"),
            ("key_prefix", "CACHE_KEY_PREFIX"),
            ("default_ttl", "CACHE_DEFAULT_TIMEOUT"),
            ("threshold", "CACHE_THRESHOLD"),
        ],
    )
    def test_options_with_their_own_key_are_refused(self, name: str, key: str) -> None:
        with pytest.raises(ConfigurationError, match=f"CACHE_OPTIONS.*{name}.*{key}"):
            settings(TsotCache, CACHE_TSOT_URL="memory://", CACHE_OPTIONS={name: "x"})


class TestCommonKeys:
    @pytest.mark.parametrize("value", [-1, None, "soon", True])
    def test_bad_default_timeout(self, value: Any) -> None:
        with pytest.raises(ConfigurationError, match="CACHE_DEFAULT_TIMEOUT"):
            settings(MemoryCache, CACHE_DEFAULT_TIMEOUT=value)

    def test_default_timeout_forms(self) -> None:
        assert settings(MemoryCache, CACHE_DEFAULT_TIMEOUT=0).default_timeout == 0
        assert (
            settings(MemoryCache, CACHE_DEFAULT_TIMEOUT=timedelta(minutes=2)).default_timeout == 120
        )
        assert settings(MemoryCache, CACHE_DEFAULT_TIMEOUT=1.2).default_timeout == 2
        # Flask-Caching itself turns a str into an int before calling factory
        cache = init(CACHE_TYPE="tsot_flask.MemoryCache", CACHE_DEFAULT_TIMEOUT="42")
        with cache.app.app_context():
            assert cache.cache.default_timeout == 42

    def test_key_prefix(self) -> None:
        assert settings(MemoryCache).options["namespace"] == "flask_cache_"
        assert settings(MemoryCache, CACHE_KEY_PREFIX=None).options["namespace"] == ""
        dynamic = settings(MemoryCache, CACHE_KEY_PREFIX=lambda: "dynamic")  # as cachelib's
        assert dynamic.prefix_callable is not None and dynamic.options["namespace"] == ""
        with pytest.raises(ConfigurationError, match=r"CACHE_KEY_PREFIX.*str or a callable"):
            settings(MemoryCache, CACHE_KEY_PREFIX=3)

    def test_ignore_errors_is_passed_on(self) -> None:
        cache = init(CACHE_TYPE="tsot_flask.MemoryCache", CACHE_IGNORE_ERRORS=True)
        with cache.app.app_context():
            assert cache.cache.ignore_delete_many_errors is True

    def test_key_prefix_default_through_flask_caching(self) -> None:
        cache = init(CACHE_TYPE="tsot_flask.MemoryCache")
        with cache.app.app_context():
            backend: Any = cache.cache
            assert backend.storage.namespace == "flask_cache_"
            assert "MemoryCache" in repr(backend)

    @pytest.mark.parametrize("cls", [RedisCache, MemcachedCache, RocksDBCache, MemoryCache])
    def test_per_kind_classes_take_no_cache_args(self, cls: type[TsotCache]) -> None:
        with pytest.raises(ConfigurationError, match="CACHE_ARGS"):
            settings(cls, ["x"], CACHE_DIR="/tmp/x")


class TestMemoryCache:
    def test_threshold_is_max_entries(self) -> None:
        assert settings(MemoryCache).options["max_entries"] == 500
        assert settings(MemoryCache, CACHE_THRESHOLD=20).options["max_entries"] == 20
        assert settings(MemoryCache, CACHE_THRESHOLD=0).options["max_entries"] == 500
        s = settings(MemoryCache, CACHE_THRESHOLD=20, CACHE_OPTIONS={"max_entries": 7})
        assert s.options["max_entries"] == 7
        with pytest.raises(ConfigurationError, match="CACHE_THRESHOLD"):
            settings(MemoryCache, CACHE_THRESHOLD=-3)

    def test_threshold_bounds_the_store(self) -> None:
        cache = init(CACHE_TYPE="tsot_flask.MemoryCache", CACHE_THRESHOLD=3)
        with cache.app.app_context():
            for i in range(10):
                cache.set(str(i), i)
            assert sum(cache.has(str(i)) for i in range(10)) == 3
            assert cache.get("9") == 9


class TestRedisCache:
    def test_host_port_db_password(self) -> None:
        s = settings(
            RedisCache,
            CACHE_REDIS_HOST="cache.local",
            CACHE_REDIS_PORT=6380,
            CACHE_REDIS_DB=3,
            CACHE_REDIS_PASSWORD=PASSWORD,
        )
        assert s.url == "redis://:hunter2-p%40ss%2Fword@cache.local:6380/3"
        assert settings(RedisCache).url == "redis://localhost:6379/0"
        assert settings(RedisCache, CACHE_REDIS_HOST="::1").url == "redis://[::1]:6379/0"
        assert settings(RedisCache, CACHE_REDIS_PORT="6390").url == "redis://localhost:6390/0"

    def test_url_wins_and_is_completed(self) -> None:
        assert settings(RedisCache, CACHE_REDIS_URL="redis://h:1/2", CACHE_REDIS_DB=5).url == (
            "redis://h:1/2"
        )
        assert settings(RedisCache, CACHE_REDIS_URL="redis://h:1", CACHE_REDIS_DB=5).url == (
            "redis://h:1/5"
        )
        assert (
            settings(RedisCache, CACHE_REDIS_URL="rediss://h:1/0", CACHE_REDIS_PASSWORD="pw").url
            == "rediss://:pw@h:1/0"
        )
        assert (
            settings(
                RedisCache, CACHE_REDIS_URL="redis://:own@h:1/0", CACHE_REDIS_PASSWORD="pw"
            ).url
            == "redis://:own@h:1/0"
        )
        assert (
            settings(RedisCache, CACHE_REDIS_URL="unix:///run/redis.sock", CACHE_REDIS_DB=2).url
            == "unix:///run/redis.sock?db=2"
        )
        assert settings(RedisCache, CACHE_REDIS_URL="redis://h:1/0?x=1").url == "redis://h:1/0?x=1"

    def test_valkey_urls_are_redis_urls(self) -> None:
        assert settings(RedisCache, CACHE_REDIS_URL="valkey://h:1", CACHE_REDIS_DB=5).url == (
            "valkey://h:1/5"
        )
        assert (
            settings(RedisCache, CACHE_REDIS_URL="valkeys://h:1/0", CACHE_REDIS_PASSWORD="pw").url
            == "valkeys://:pw@h:1/0"
        )
        for url in ("valkey+cluster://h:1", "valkey+sentinel://h:1/svc/0"):
            with pytest.raises(ConfigurationError, match="CACHE_REDIS_URL") as info:
                init(CACHE_TYPE="tsot_flask.RedisCache", CACHE_REDIS_URL=url)
            assert "valkey://" in str(info.value) and "TsotCache" in str(info.value)

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("CACHE_REDIS_PORT", "abc"),
            ("CACHE_REDIS_PORT", 70000),
            ("CACHE_REDIS_DB", -1),
            ("CACHE_REDIS_HOST", "a/b"),
            ("CACHE_REDIS_PASSWORD", 1234),
            ("CACHE_REDIS_URL", "memcached://h:1"),
            ("CACHE_REDIS_URL", "redis://h:notaport"),
        ],
    )
    def test_bad_values_name_the_key(self, key: str, value: Any) -> None:
        with pytest.raises(ConfigurationError, match=key):
            init(CACHE_TYPE="tsot_flask.RedisCache", **{key: value})

    def test_password_is_never_shown(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        s = settings(RedisCache, CACHE_REDIS_PASSWORD=PASSWORD)
        assert "hunter2" not in repr(s) and "hunter2" not in str(s.masked_url)
        s = settings(
            RedisCache, SECRET_KEY="hunter2-hunter2-hunter2", CACHE_OPTIONS={"password": "hunter2"}
        )
        assert "hunter2" not in repr(s)
        bad: list[dict[str, Any]] = [
            {
                "CACHE_REDIS_URL": f"redis://:{PASSWORD.replace('@', '%40').replace('/', '%2F')}"
                "@127.0.0.1:1/0?no_such_option=1"
            },
            {"CACHE_REDIS_URL": "memcached://user:hunter2@h:1"},
            {"CACHE_REDIS_URL": "redis://:hunter2@h:99999/0"},
            {"CACHE_REDIS_PASSWORD": PASSWORD, "CACHE_OPTIONS": {"no_such_option": 1}},
        ]
        for config in bad:
            with pytest.raises(ConfigurationError) as info:
                init(CACHE_TYPE="tsot_flask.RedisCache", **config)
            text = error_text(info.value)
            assert "hunter2" not in text, text
            assert "CACHE_" in str(info.value)
        assert "hunter2" not in caplog.text


class TestMemcachedCache:
    def test_servers(self) -> None:
        assert settings(MemcachedCache).url == "memcached://127.0.0.1:11211"
        s = settings(MemcachedCache, CACHE_MEMCACHED_SERVERS=["a:1", "b:2"])
        assert s.url == "memcached://a:1,b:2"
        assert settings(MemcachedCache, CACHE_MEMCACHED_SERVERS="a:1, b:2").url == (
            "memcached://a:1,b:2"
        )
        assert settings(MemcachedCache, CACHE_MEMCACHED_SERVERS=("a",)).url == "memcached://a"
        for socket in ("/run/mc.sock", "unix:/run/mc.sock"):
            s = settings(MemcachedCache, CACHE_MEMCACHED_SERVERS=[socket])
            assert s.url == "memcached:///run/mc.sock"
        mixed = settings(MemcachedCache, CACHE_MEMCACHED_SERVERS=["/tmp/mc.sock", "a:1"])
        assert mixed.url == "memcached://%2Ftmp%2Fmc.sock,a:1"  # a socket among servers

    @pytest.mark.parametrize("value", [[], [1], ["a b:1"], 7, ["h:0"], ["a:1", None]])
    def test_bad_servers_name_the_key(self, value: Any) -> None:
        with pytest.raises(ConfigurationError, match="CACHE_MEMCACHED_SERVERS"):
            init(CACHE_TYPE="tsot_flask.MemcachedCache", CACHE_MEMCACHED_SERVERS=value)


class TestRocksDBCache:
    def test_dir(self, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        assert settings(RocksDBCache, CACHE_DIR=str(tmp_path / "db")).url == (
            f"rocksdb://{tmp_path}/db"
        )
        monkeypatch.chdir(tmp_path)
        assert settings(RocksDBCache, CACHE_DIR="rel dir").url == (
            f"rocksdb://{tmp_path}/rel%20dir"
        )
        assert settings(RocksDBCache, CACHE_DIR=tmp_path / "p").url == f"rocksdb://{tmp_path}/p"

    def test_missing_dir_names_the_key(self) -> None:
        with pytest.raises(ConfigurationError, match=r"CACHE_DIR.*not set"):
            init(CACHE_TYPE="tsot_flask.RocksDBCache")

    def test_a_path_with_odd_characters_opens(self, tmp_path: Any) -> None:
        path = tmp_path / "a dir?#%x"
        cache = init(CACHE_TYPE="tsot_flask.RocksDBCache", CACHE_DIR=str(path))
        with cache.app.app_context():
            assert cache.set("k", "v") and cache.get("k") == "v"
            assert os.path.isdir(path)
        from tsot.backends.rocksdb import close_database

        close_database(str(path))


class TestSigning:
    """Serialized objects are signed with SECRET_KEY; a bad or missing signature is a miss."""

    @staticmethod
    def cache(url: str, prefix: str = "sig_", **config: Any) -> Cache:
        return init(
            CACHE_TYPE="tsot_flask.TsotCache",
            CACHE_TSOT_URL=url,
            CACHE_KEY_PREFIX=prefix,
            **config,
        )

    @staticmethod
    def raw(cache: Cache, key: str) -> bytes | None:
        with cache.app.app_context():
            backend = cache.cache
            assert isinstance(backend, TsotCache)
            return backend.storage.backend.get(f"{backend.storage.namespace}:{key}".encode())

    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        # On disk: process memory is never signed (nothing outside the process writes there).
        return f"rocksdb://{tmp_path}/sign-{uuid.uuid4().hex}"

    def test_objects_are_signed_with_the_secret_key(self, url: str) -> None:
        signed = self.cache(url, SECRET_KEY="first-secret-key-1")
        with signed.app.app_context():
            signed.set("obj", {"a": 1})
            signed.set("text", "plain")
            assert signed.get("obj") == {"a": 1}
        assert (self.raw(signed, "obj") or b"")[:1] == b"h"
        assert self.raw(signed, "text") == b"splain"  # data, not code: not signed

    def test_without_a_secret_key_objects_are_not_signed(self, url: str) -> None:
        plain = self.cache(url)
        with plain.app.app_context():
            plain.set("obj", {"a": 1})
        assert (self.raw(plain, "obj") or b"")[:1] == b"p"

    def test_another_secret_reads_a_miss(self, url: str) -> None:
        writer = self.cache(url, SECRET_KEY="first-secret-key-1")
        reader = self.cache(url, SECRET_KEY="another-secret-key")
        with writer.app.app_context():
            writer.set("obj", ["payload"])
            writer.set("n", 5)
        with reader.app.app_context():
            assert reader.get("obj") is None
            assert reader.get_many("obj", "n") == [None, 5]  # ints are data, readable by all

    def test_unsigned_values_are_a_miss_for_a_signing_app(self, url: str) -> None:
        plain, signed = self.cache(url), self.cache(url, SECRET_KEY="first-secret-key-1")
        with plain.app.app_context():
            plain.set("obj", ["unsigned"])
        with signed.app.app_context():
            assert signed.get("obj") is None

    def test_secret_key_fallbacks_rotate(self, url: str) -> None:
        old = self.cache(url, SECRET_KEY="the-old-secret-key")
        new = self.cache(
            url, SECRET_KEY="the-new-secret-key", SECRET_KEY_FALLBACKS=["the-old-secret-key"]
        )
        with old.app.app_context():
            old.set("obj", ("kept",))
        with new.app.app_context():
            assert new.get("obj") == ("kept",)
            new.set("obj2", ("fresh",))
        with old.app.app_context():
            assert old.get("obj2") is None  # written with the new key only

    def test_tampered_payload_is_a_miss(self, url: str) -> None:
        signed = self.cache(url, SECRET_KEY="first-secret-key-1")
        with signed.app.app_context():
            signed.set("obj", {"a": 1})
            backend = signed.cache
            assert isinstance(backend, TsotCache)
            final = b"sig_:obj"
            data = bytearray(backend.storage.backend.get(final) or b"")
            data[-2] ^= 0x01
            backend.storage.backend.set(final, bytes(data), None)
            assert signed.get("obj") is None

    def test_signing_can_be_turned_off(self, url: str) -> None:
        off = self.cache(url, SECRET_KEY="first-secret-key-1", CACHE_OPTIONS={"secret": None})
        with off.app.app_context():
            off.set("obj", {"a": 1})
        assert (self.raw(off, "obj") or b"")[:1] == b"p"

    def test_a_bad_secret_key_names_it(self, url: str) -> None:
        with pytest.raises(ConfigurationError, match="SECRET_KEY"):
            self.cache(url, SECRET_KEY=12345)

    @pytest.mark.parametrize(
        ("config", "key", "match"),
        [
            ({"SECRET_KEY": "short"}, "SECRET_KEY", "SECRET_KEY is 5 bytes"),
            (
                {"SECRET_KEY": "x" * 20, "SECRET_KEY_FALLBACKS": ["", "old"]},
                "SECRET_KEY_FALLBACKS[1]",
                r"SECRET_KEY_FALLBACKS\[1\] is 3 bytes",
            ),
            ({"SECRET_KEY": ["x" * 20]}, "SECRET_KEY", "must be a str or bytes, not list"),
            ({"SECRET_KEY": "x" * 20, "SECRET_KEY_FALLBACKS": "old"}, "", "must be a list"),
        ],
        ids=["short-key", "short-fallback", "list-key", "fallbacks-str"],
    )
    def test_short_or_malformed_secrets_are_refused_naming_the_key(
        self, url: str, config: dict[str, Any], key: str, match: str
    ) -> None:
        with pytest.raises(ConfigurationError, match=match) as info:
            self.cache(url, **config)
        assert f"invalid {key}" in str(info.value)
        assert "old" not in str(info.value).replace("SECRET_KEY", "")

    @pytest.mark.parametrize("key", ["dev", ""])
    def test_process_memory_needs_no_secret_key(self, key: str) -> None:
        """Like SimpleCache: nothing outside the process writes there, so nothing is signed and a
        short or empty SECRET_KEY (a development app's) is not refused."""
        cache = init(CACHE_TYPE="tsot_flask.MemoryCache", SECRET_KEY=key)
        with cache.app.app_context():
            cache.set("k", {"v": 1})
            assert cache.get("k") == {"v": 1}
        assert settings(MemoryCache, SECRET_KEY=key).options["secret"] is None

    def test_empty_fallbacks_are_ignored(self, url: str) -> None:
        """``SECRET_KEY_FALLBACKS=[os.environ.get("OLD", "")]`` must not add a public key."""
        config = {"SECRET_KEY": "x" * 20, "SECRET_KEY_FALLBACKS": ["", b""]}
        assert settings(TsotCache, CACHE_TSOT_URL=url, **config).options["secret"] == [b"x" * 20]
        cache = self.cache(url, **config)
        with cache.app.app_context():
            backend = cache.cache
            assert isinstance(backend, TsotCache)
            forged = Codec(signer=Signer([b""])).encode(["forged"])
            backend.storage.backend.set(b"sig_:obj", forged, None)
            assert cache.get("obj") is None

    def test_no_secret_key_on_a_network_backend_warns_once(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="tsot")
        prefix = f"warn{uuid.uuid4().hex[:8]}"
        for _ in range(2):
            init(CACHE_TYPE="tsot_flask.RedisCache", CACHE_REDIS_PORT=1, CACHE_KEY_PREFIX=prefix)
        lines = [
            r.getMessage() for r in caplog.records if "stores pickles unsigned" in r.getMessage()
        ]
        assert len(lines) == 1, lines
        assert "SECRET_KEY" in lines[0] and '{"secret": None}' in lines[0]

    @pytest.mark.parametrize(
        "config",
        [
            {"CACHE_OPTIONS": {"secret": None}},
            {"SECRET_KEY": "x" * 20},
            {"CACHE_OPTIONS": {"serializer": "json"}},
        ],
        ids=["explicit-none", "signed", "json"],
    )
    def test_no_warning_when_signed_or_opted_out(
        self, caplog: pytest.LogCaptureFixture, config: dict[str, Any]
    ) -> None:
        caplog.set_level(logging.WARNING, logger="tsot")
        prefix = f"quiet{uuid.uuid4().hex[:8]}"
        init(
            CACHE_TYPE="tsot_flask.RedisCache",
            CACHE_REDIS_PORT=1,
            CACHE_KEY_PREFIX=prefix,
            **config,
        )
        assert not [r for r in caplog.records if "stores pickles unsigned" in r.getMessage()]
