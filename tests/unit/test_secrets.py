"""Secrets that are secrets: empty, short and empty-list secrets are refused, never a public key.

And signing is never silently off: a network backend storing pickles without ``secret`` warns
once at startup, unless ``secret=None`` says so explicitly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tsot import AsyncStorage, ConfigurationError, Storage
from tsot.secrets import MIN_SECRET_BYTES, framework_secrets, secret_keys

GOOD = "a-secret-of-24-characters"
UNUSED_REDIS = "redis://127.0.0.1:1/0"  # never contacted: opening a Storage sends nothing
UNUSED_MEMCACHED = "memcached://127.0.0.1:1"


@pytest.mark.parametrize(
    ("secret", "match"),
    [
        ("", "option 'secret' is empty"),
        (b"", "option 'secret' is empty"),
        ([], "option 'secret' is an empty list"),
        ((), "option 'secret' is an empty list"),
        ([GOOD, ""], r"option 'secret'\[1\] is empty"),
        ([b"", GOOD], r"option 'secret'\[0\] is empty"),
        ("none", "option 'secret' is 4 bytes; a signing secret needs at least 16"),
        ("None", "option 'secret' is 4 bytes"),
        ("x" * (MIN_SECRET_BYTES - 1), "is 15 bytes"),
        ([GOOD, b"short"], r"option 'secret'\[1\] is 5 bytes"),
        (5, "must be a str, bytes or a list of them, not int"),
        ([GOOD, 5], r"option 'secret'\[1\] must be a str or bytes, not int"),
        ("\ud800" * 20, "cannot be encoded as UTF-8"),
    ],
    ids=repr,
)
@pytest.mark.parametrize("open_", ["new_imc", "memory_url", "async_url"])
def test_bad_secrets_are_configuration_errors(secret: Any, match: str, open_: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        if open_ == "new_imc":
            Storage.new_imc(secret=secret)
        elif open_ == "memory_url":
            Storage.from_url("memory://secrets", secret=secret)
        else:
            AsyncStorage.from_url("memory://secrets", secret=secret)
    if isinstance(secret, str) and len(secret) >= 4:
        assert secret not in str(info.value)
    assert info.value.option == "secret"


OLD = "an-old-secret-of-24-chars"


@pytest.mark.parametrize(
    ("key", "fallbacks", "expected"),
    [
        (GOOD, None, [GOOD.encode()]),
        (GOOD.encode(), [], [GOOD.encode()]),
        (GOOD, [OLD], [GOOD.encode(), OLD.encode()]),
        (GOOD, ("", OLD, b""), [GOOD.encode(), OLD.encode()]),  # empty fallbacks: skipped
        (None, [OLD], None),  # no key: the adapter decides (Flask: unsigned, warned)
        ("", None, None),
        (b"", [OLD], None),
    ],
    ids=["key", "bytes-key", "fallback", "empty-fallbacks-skipped", "none", "empty", "empty-b"],
)
def test_framework_secrets_gathers_key_then_fallbacks(
    key: Any, fallbacks: Any, expected: list[bytes] | None
) -> None:
    assert framework_secrets(key, fallbacks) == expected


@pytest.mark.parametrize(
    ("key", "fallbacks", "option", "match"),
    [
        ("short", None, "SECRET_KEY", "SECRET_KEY is 5 bytes"),
        (["x" * 20], None, "SECRET_KEY", "SECRET_KEY must be a str or bytes, not list"),
        (12345, None, "SECRET_KEY", "not int"),
        (GOOD, OLD, "SECRET_KEY_FALLBACKS", "SECRET_KEY_FALLBACKS must be a list, not str"),
        (GOOD, ["", "old"], "SECRET_KEY_FALLBACKS[1]", r"SECRET_KEY_FALLBACKS\[1\] is 3 bytes"),
        (GOOD, [OLD, 5], "SECRET_KEY_FALLBACKS[1]", "must be a str or bytes, not int"),
        (GOOD, [[OLD]], "SECRET_KEY_FALLBACKS[0]", "must be a str or bytes, not list"),
    ],
    ids=["short", "list-key", "int-key", "str-fallbacks", "short-fallback", "int-fb", "nested"],
)
def test_framework_secrets_errors_name_the_setting(
    key: Any, fallbacks: Any, option: str, match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        framework_secrets(key, fallbacks)
    assert info.value.option == option
    assert "old" not in str(info.value).replace("SECRET_KEY", "")


def test_framework_secrets_names_settings_as_the_framework_calls_them() -> None:
    with pytest.raises(ConfigurationError, match=r"OLD_KEYS\[0\] is 3 bytes") as info:
        framework_secrets(GOOD, ["old"], key_name="KEY", fallbacks_name="OLD_KEYS")
    assert info.value.option == "OLD_KEYS[0]"


def test_sixteen_bytes_sign_and_rotation_verifies(tmp_path: Path) -> None:
    # On disk: a memory table never signs (nothing outside the process writes to it).
    old = Storage.from_url(f"rocksdb://{tmp_path}/old", secret="o" * MIN_SECRET_BYTES)
    payload = old.codec.encode({"a": 1})
    assert payload[:1] == b"h"
    rotated = Storage.from_url(f"rocksdb://{tmp_path}/new", secret=[GOOD, b"o" * MIN_SECRET_BYTES])
    assert rotated.codec.decode(payload) == {"a": 1}
    assert secret_keys(("é" * 8,)) == ["é".encode() * 8]  # 16 UTF-8 bytes


def test_secret_none_and_omitted_turn_signing_off(tmp_path: Path) -> None:
    off = Storage.from_url(f"rocksdb://{tmp_path}/off", secret=None)
    for store in (off, Storage.from_url(f"rocksdb://{tmp_path}/omitted")):
        assert store.codec.encode({"a": 1})[:1] == b"p"


@pytest.fixture
def tsot_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="tsot")
    return caplog


def _unsigned_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "tsot" and "stores pickles unsigned" in r.getMessage()
    ]


@pytest.mark.parametrize("url", [UNUSED_REDIS, UNUSED_MEMCACHED])
@pytest.mark.parametrize("cls", [Storage, AsyncStorage])
def test_network_backend_with_pickles_and_no_secret_warns_once(
    tsot_log: pytest.LogCaptureFixture, url: str, cls: Any, request: pytest.FixtureRequest
) -> None:
    namespace = f"warn-{request.node.name}"
    cls.from_url(url, namespace=namespace)
    cls.from_url(url, namespace=namespace)  # the same location again: no second line
    (line,) = _unsigned_warnings(tsot_log)
    assert url in line and "secret=None" in line and "secret=" in line


@pytest.mark.parametrize(
    "options",
    [{"secret": None}, {"secret": GOOD}, {"serializer": "json"}],
    ids=["explicit-none", "signed", "json"],
)
def test_no_warning_when_signed_opted_out_or_not_pickle(
    tsot_log: pytest.LogCaptureFixture, options: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    Storage.from_url(UNUSED_REDIS, namespace=f"quiet-{request.node.name}", **options)
    assert _unsigned_warnings(tsot_log) == []


def test_no_warning_for_local_backends(tsot_log: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    from tsot.backends.rocksdb import close_database

    Storage.from_url("memory://local-warning")
    Storage.from_url(f"rocksdb://{tmp_path}/db")
    close_database(str(tmp_path / "db"))
    assert _unsigned_warnings(tsot_log) == []


def test_the_string_none_is_a_value_for_credentials_not_none() -> None:
    """``password="none"`` meant no password at all, as ``secret="none"`` meant no signing."""
    from tsot.backends.redis.config import OPTIONS

    password = next(o for o in OPTIONS if o.name == "password")
    assert password.parse("none") == "none" and password.parse(None) is None
    timeout = next(o for o in OPTIONS if o.name == "socket_timeout")
    assert timeout.parse("none") is None  # URL-given options keep "none" = None
