"""Masking that cannot leak: a password with any reserved character never shows.

One splitter (``tsot.config.split_url``) parses and masks, so what ``parse_url`` takes as the
password is exactly what ``mask_url`` hides. The property test builds storage URLs of every
shape around passwords made of RFC 3986 reserved characters (unencoded and percent-encoded) and
looks for any piece of the password in errors, reprs, log lines, ``stats()`` and the registry of
shared resources. Nothing here sends traffic: the ports are closed ones on 127.0.0.1.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from urllib.parse import quote, unquote

import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.servers.proc import free_port
from tsot import AsyncStorage, ConfigurationError, Storage, TsotError, mask_url, parse_url
from tsot.backends.base import shared_keys
from tsot.errors import ValueTooLarge, WrongType
from tsot.keys import SHOWN_KEY_CHARS, KeySpace, shown

RESERVED = ":/?#[]@!$&'()*+,;=%"
MARK = "Zq"  # never in a masked URL, a message or a registry key: any leaked piece shows it


@st.composite
def passwords(draw: st.DrawFn) -> str:
    """Runs of reserved characters, each followed by a marker: every fragment holds a marker."""
    runs = draw(
        st.lists(st.text(alphabet=RESERVED, min_size=1, max_size=3), min_size=2, max_size=6)
    )
    return "".join(f"{run}{MARK}{i}" for i, run in enumerate(runs))


SHAPES: dict[str, Callable[[str, int], str]] = {
    "redis-user": lambda pw, port: f"redis://app:{pw}@127.0.0.1:{port}/0",
    "redis-empty-user": lambda pw, port: f"redis://:{pw}@127.0.0.1:{port}/0?socket_timeout=1",
    "redis-lone": lambda pw, port: f"redis://{pw}@127.0.0.1:{port}/0",
    "rediss": lambda pw, port: f"rediss://app:{pw}@127.0.0.1:{port}/0?ssl_cert_reqs=none",
    "sentinel": lambda pw, port: f"redis+sentinel://:{pw}@127.0.0.1:{port}/mymaster/0",
    "cluster": lambda pw, port: f"redis+cluster://:{pw}@127.0.0.1:{port},127.0.0.1:{port + 1}",
    "unix": lambda pw, port: f"unix://:{pw}@/tmp/tsot-none-{port}.sock?db=1",
    "memcached": lambda pw, port: f"memcached://app:{pw}@127.0.0.1:{port}",
    "memory": lambda pw, port: f"memory://app:{pw}@masking-{port}",
    "no-scheme": lambda pw, port: f"app:{pw}@127.0.0.1:{port}/0",
    "bad-port": lambda pw, port: f"redis://:{pw}@127.0.0.1:99999/0",
    "bad-option": lambda pw, port: f"redis://:{pw}@127.0.0.1:{port}/0?socket_timeout=soon",
    "unknown-option": lambda pw, port: f"redis://:{pw}@127.0.0.1:{port}/0?nosuch=1",
    "bad-db": lambda pw, port: f"redis://:{pw}@127.0.0.1:{port}/zero",
}


def error_text(exc: BaseException) -> str:
    parts = ["".join(traceback.format_exception(exc))]
    current: BaseException | None = exc
    while current is not None:
        parts += [str(current), repr(current), repr(current.args)]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def texts_for(url: str) -> list[str]:
    """Everything a user or operator can see of a Storage opened (or refused) on ``url``."""
    texts = [mask_url(url)]
    try:
        texts.append(repr(parse_url(url)))
    except ConfigurationError as exc:
        texts.append(error_text(exc))
    for options in ({}, {"fail_open": True, "probe_interval": 60.0}):
        for cls in (Storage, AsyncStorage):
            try:
                store = cls.from_url(url, namespace="mask", **options)
            except (TsotError, ImproperlyConfigured) as exc:
                texts.append(error_text(exc))
                continue
            texts += [repr(store), store.url, repr(store.location), repr(store.backend)]
            if cls is Storage and "memory" in url:
                texts.append(repr(store.stats()))
    texts.append(repr(shared_keys()))
    return texts


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(password=passwords(), shape=st.sampled_from(sorted(SHAPES)), encode=st.booleans())
def test_password_never_shows(
    password: str, shape: str, encode: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    # unencoded, a ":" in a lone userinfo (redis://pw@host) makes it "user:password" by definition
    assume(encode or shape != "redis-lone" or ":" not in password)
    written = quote(password, safe="") if encode else password
    url = SHAPES[shape](written, free_port())
    texts = texts_for(url)
    texts.append(caplog.text)
    for text in texts:
        assert MARK not in text, f"{shape}: a piece of the password shows in: {text[:400]}"
    if shape == "redis-lone" and not encode and password.startswith(("/", "?")):
        # redis://?pw@host cannot be told from a query: refused (masked), never half-parsed
        with pytest.raises(ConfigurationError, match="percent-encode a password"):
            parse_url(url)
    elif shape.startswith(("redis", "sentinel", "cluster", "unix", "memory")):
        # the same splitter parses: the password is taken whole, whatever it holds
        assert parse_url(url).password == (password if encode else unquote(password))


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:pa#ss@h/0", "redis://:***@h/0"),
        ("redis://:pa?ss@h/0", "redis://:***@h/0"),
        ("redis://:pa/ss@h/0", "redis://:***@h/0"),
        ("redis://u:p@ss@h:1/0?db=1", "redis://u:***@h:1/0?db=1"),
        ("default:s3cret@cache:6379/0", "***@cache:6379/0"),
        ("redis://h/0?password=x&socket_timeout=1", "redis://h/0?password=***&socket_timeout=1"),
        ("rocksdb:///data/a@b", "rocksdb:///data/a@b"),
        # a password starting with "?" or "/" cannot be told from a query or path: hidden anyway
        ("redis://?Zq0;Zq1@127.0.0.1:1/0", "redis://***@127.0.0.1:1/0"),
        ("redis:///pw@127.0.0.1:1/0", "redis://***@127.0.0.1:1/0"),
        ("rocksdb:///data/x?token=1@b", "rocksdb://***@b"),
    ],
)
def test_mask_url_examples(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_scheme_less_url_error_masks_the_password() -> None:
    with pytest.raises(ConfigurationError, match=r"'\*\*\*@cache:6379/0' has no scheme") as info:
        Storage.from_url("default:s3cret@cache:6379/0")
    assert "s3cret" not in f"{info.value!s} {info.value!r}"


def test_breaker_registry_key_holds_no_url() -> None:
    url = f"redis://:registry-pw-{MARK}@127.0.0.1:{free_port()}/0"
    assert Storage.from_url(url, fail_open=True, secret=None).backend  # opened here (lazily)
    assert parse_url(url).digest in repr(shared_keys())
    assert MARK not in repr(shared_keys())


SESSION = "sessions:" + "f3a9c1d2e4b5a6978877665544332211"


def test_key_material_in_messages_is_shortened() -> None:
    assert shown("short") == "'short'"
    text = shown(SESSION)
    assert SESSION[: len("sessions:") + SHOWN_KEY_CHARS] in text and "41 characters" in text
    assert SESSION not in text and shown(SESSION.encode()) == text  # b"a" and "a": one key
    assert shown(b"\xff" * 40).endswith("(40 bytes)")  # not UTF-8: shown as bytes
    long_ns = "n" * 100 + ":" + SESSION
    assert shown(long_ns) == repr(long_ns[:SHOWN_KEY_CHARS]) + f"... ({len(long_ns)} characters)"
    store = Storage.new_imc(max_bytes=64)
    with pytest.raises(ValueTooLarge) as too_large:
        store.store(SESSION, "x" * 100)
    store.store(SESSION, "text")
    with pytest.raises(WrongType) as wrong:
        store.load_int(SESSION)
    with pytest.raises(WrongType) as not_int:
        store.incr(SESSION)
    for exc in (too_large.value, wrong.value, not_int.value):
        assert "sessions:f3a9c1d2e4b5a697" in str(exc) and SESSION not in str(exc), str(exc)
    long_key = "k" * 70000
    with pytest.raises(Exception, match="the limit is") as too_long:
        KeySpace("ns").make(long_key)
    assert len(str(too_long.value)) < 200


@pytest.mark.parametrize("url", ["redis://?Zq0;Zq1@127.0.0.1:1/0", "redis:///Zq0@127.0.0.1:1/0"])
def test_password_the_splitter_cannot_place_is_refused_masked(url: str) -> None:
    with pytest.raises(ConfigurationError, match="percent-encode a password") as info:
        parse_url(url)
    assert MARK not in str(info.value)
