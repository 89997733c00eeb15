"""The value format: tags, plain-decimal ints, serializers, compression and signing."""

from __future__ import annotations

import logging
import pickle
import threading

import pytest

from tsot import SerializationError
from tsot.codec import MISS, Codec, Signer, decode_int, is_int_payload


def test_ints_are_plain_decimal() -> None:
    c = Codec()
    assert c.encode(123) == b"123"
    assert c.encode(-7) == b"-7"
    assert c.encode(2**70) == str(2**70).encode()
    assert c.decode(b"-42") == -42
    assert is_int_payload(b"-1") and is_int_payload(b"9")
    assert not is_int_payload(b"s9") and not is_int_payload(b"")


def test_tags_are_never_digits_or_minus() -> None:
    c = Codec(compression="zlib", compress_threshold=0, signer=Signer(["k"]))
    for value in ("123", b"123", 1.5, True, None, {"a": 1}, "x" * 5000, b"y" * 5000):
        data = c.encode(value)
        assert data[:1] not in b"-0123456789", value
        assert c.decode(data) == value


def test_exact_tags() -> None:
    c = Codec()
    assert c.encode("hé") == b"s" + "hé".encode()
    assert c.encode(b"\x00") == b"b\x00"
    assert c.encode(1.5) == b"f1.5"
    assert c.encode(True)[:1] == b"p"
    assert c.encode(True)[1:] == pickle.dumps(True, pickle.HIGHEST_PROTOCOL)


def test_json_and_msgpack() -> None:
    for name, tag in (("json", b"j"), ("msgpack", b"m")):
        c = Codec(serializer=name)
        data = c.encode({"a": [1, 2]})
        assert data[:1] == tag
        assert c.decode(data) == {"a": [1, 2]}
        with pytest.raises(SerializationError, match="lock"):
            c.encode(threading.Lock())


@pytest.mark.parametrize("compression", ["zlib", "zstd", "lz4"])
def test_compression_above_threshold_only(compression: str) -> None:
    c = Codec(compression=compression, compress_threshold=100)
    small = c.encode("a" * 50)
    assert small[:1] == b"s"
    big = c.encode("a" * 5000)
    assert big[:1] in (b"z", b"Z", b"L")
    assert len(big) < 200
    assert c.decode(big) == "a" * 5000
    assert Codec().decode(big) == "a" * 5000  # any reader decodes every tag


def test_incompressible_payload_stays_plain() -> None:
    import os

    c = Codec(compression="zlib", compress_threshold=10)
    data = os.urandom(2000)
    assert c.encode(data)[:1] == b"b"


def test_signature_required_and_checked(caplog: pytest.LogCaptureFixture) -> None:
    signed = Codec(signer=Signer(["new", "old"]))
    old = Codec(signer=Signer(["old"]))
    plain = Codec()
    payload = old.encode({"x": 1})
    assert payload[:1] == b"h"
    assert signed.decode(payload) == {"x": 1}  # rotation: fallbacks verify
    with caplog.at_level(logging.WARNING, logger="tsot"):
        assert Codec(signer=Signer(["other"])).decode(payload) is MISS
        assert signed.decode(plain.encode({"x": 1})) is MISS
    tampered = payload[:-1] + bytes([payload[-1] ^ 1])
    assert signed.decode(tampered) is MISS
    assert "new" not in caplog.text and "old" not in caplog.text


def test_unsigned_reader_never_runs_pickle_of_bad_signature() -> None:
    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (exec, ("raise SystemExit('ran')",))

    evil = b"p" + pickle.dumps(Boom())
    assert Codec(signer=Signer(["k"])).decode(evil) is MISS


def test_corrupt_payloads_are_logged_misses(caplog: pytest.LogCaptureFixture) -> None:
    c = Codec()
    for data in (b"", b"\x01junk", b"pnot a pickle", b"z\x00\x01", b"h" + b"x" * 10):
        assert c.decode(data) is MISS, data


def test_decode_int() -> None:
    assert decode_int(b"12", "k") == 12
    with pytest.raises(TypeError, match="'k'"):
        decode_int(b"s12", "k")


def test_signer_repr_hides_secret() -> None:
    assert "topsecret" not in repr(Signer(["topsecret"]))
    assert "topsecret" not in repr(Codec(signer=Signer(["topsecret"])))
