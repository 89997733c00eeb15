"""The value format: tags, plain-decimal ints, serializers, compression and signing."""

from __future__ import annotations

import logging
import pickle
import threading

import pytest

from tsot import SerializationError
from tsot.codec import MISS, Codec, Signer, decode_int, is_int_payload
from tsot.logs import limited


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


# -- whoever can write to the cache gains nothing -------------------------------------------

SECRET = "a-signing-secret-of-32-bytes-ok!"
OTHER = "another-secret-also-32-bytes-ok!"


@pytest.fixture(autouse=True)
def _fresh_log_limits() -> None:
    from tsot.logs import limited

    limited.reset()


def _poison() -> list[bytes]:
    """Foreign, corrupt and truncated payloads of every tag."""
    import zlib

    good = Codec(signer=Signer([SECRET])).encode({"x": list(range(50))}, b"k")
    return [
        b"",
        b"foo",
        b"s\xff",
        b"fnot-a-float",
        b"f",
        b"p" + pickle.dumps({"a": 1})[:-3],  # truncated pickle
        b"j{not json",
        b"m\xc1",
        b"z" + zlib.compress(b"s\xff\xfe"),  # z of invalid UTF-8
        b"z" + zlib.compress(b"sabc")[:-2],  # truncated zlib
        b"z" + zlib.compress(b"sabc") + b"junk",  # trailing bytes
        b"z" + zlib.compress(b"z" + zlib.compress(b"sabc")),  # nested compression
        b"Z\x28\xb5\x2f\xfd garbage",
        b"L\x04\x22\x4d\x18 garbage",
        b"z",
        b"Z",
        b"L",
        b"h",
        b"h" + b"\x00" * 32,
        good[:-1],
        good[:40],
        b"1_000",
        b"12\n",
        b"-",
        b"--1",
        b"1" * 60_000,  # over MAX_INT_DIGITS
        b"\x00\x01\x02",
    ]


@pytest.mark.parametrize("signed", [False, True])
def test_decode_is_total(signed: bool, caplog: pytest.LogCaptureFixture) -> None:
    c = Codec(signer=Signer([SECRET]) if signed else None)
    with caplog.at_level(logging.WARNING, logger="tsot"):
        for data in _poison():
            assert c.decode(data, b"k") is MISS, data[:50]
    assert c.refused.value == len(_poison())
    assert "tsot: ignored the stored value of key" in caplog.text


def test_missing_extra_is_a_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Z/L payload without zstandard/lz4 installed is a logged miss naming the extra."""
    import sys

    data_z = Codec(compression="zstd", compress_threshold=0).encode("x" * 100)
    data_l = Codec(compression="lz4", compress_threshold=0).encode("x" * 100)
    monkeypatch.setitem(sys.modules, "zstandard", None)
    monkeypatch.setitem(sys.modules, "lz4.frame", None)
    c = Codec()
    assert c.decode(data_z) is MISS
    assert c.decode(data_l) is MISS
    assert c.refused.value == 2


def test_miss_log_shortens_the_key(caplog: pytest.LogCaptureFixture) -> None:
    session = b"ns:1:django.contrib.sessions.cache" + b"s3cr3ts3ss10n1d" * 2
    with caplog.at_level(logging.WARNING, logger="tsot"):
        assert Codec().decode(b"foo", session) is MISS
    assert b"s3cr3ts3ss10n1d".decode() not in caplog.text
    assert f"({len(session)} characters)" in caplog.text
    caplog.clear()
    limited.reset()  # the same topic again, within the rate limit's interval
    with caplog.at_level(logging.WARNING, logger="tsot"):  # the namespace is left out
        assert Codec(key_prefix=b"ns:").decode(b"foo", b"ns:user-key") is MISS
    assert "key 'user-key' (" in caplog.text


@pytest.mark.parametrize("compression", ["zlib", "zstd", "lz4"])
def test_zip_bombs_stop_at_max_value_size(compression: str) -> None:
    """A compressed value inflates to at most max_value_size bytes, then is a miss."""
    limit = 1 << 20
    bomb = Codec(compression=compression, compress_threshold=0).encode(b"\x00" * (8 << 20))
    assert len(bomb) < 100_000  # tiny on the wire, 8 MiB once inflated
    reader = Codec(max_value_size=limit)
    assert reader.decode(bomb) is MISS
    assert reader.refused.value == 1
    fits = Codec(compression=compression, compress_threshold=0).encode(b"\x00" * (limit - 1))
    assert reader.decode(fits) == b"\x00" * (limit - 1)  # the payload (tag + bytes) is the limit


@pytest.mark.parametrize("compression", ["zlib", "zstd", "zstd-nosize", "lz4"])
def test_inflation_is_bounded_in_memory(compression: str) -> None:
    """Decoding a 32 MiB bomb under the 1 MiB limit never allocates the 32 MiB."""
    import tracemalloc

    from tsot.codec import T_LZ4, T_ZLIB, T_ZSTD

    tag = {"zlib": T_ZLIB, "zstd": T_ZSTD, "zstd-nosize": T_ZSTD, "lz4": T_LZ4}[compression]
    chunk = b"\x00" * (1 << 20)
    if compression == "zlib":
        import zlib

        z = zlib.compressobj()
        body = b"".join(z.compress(chunk) for _ in range(32)) + z.flush()
    elif compression.startswith("zstd"):
        import zstandard

        sized = compression == "zstd"  # the frame header gives the size, or it does not
        body = zstandard.ZstdCompressor(write_content_size=sized).compress(b"b" + chunk * 32)
    else:
        import lz4.frame

        body = lz4.frame.compress(b"b" + chunk * 32)
    reader = Codec(max_value_size=1 << 20)
    tracemalloc.start()
    try:
        assert reader.decode(bytes((tag,)) + body) is MISS
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak


def test_max_value_size_refuses_writes_before_anything_is_written() -> None:
    from tsot import ValueTooLarge

    c = Codec(max_value_size=1000, compression="zlib")
    with pytest.raises(ValueTooLarge, match="max_value_size is 1000"):
        c.encode("x" * 2000, b"key")
    assert c.decode(c.encode("x" * 900)) == "x" * 900


@pytest.mark.parametrize("bad", [0, -1, 513 * 1024 * 1024, 1.5])
def test_max_value_size_is_checked(bad: object) -> None:
    from tsot import ConfigurationError

    with pytest.raises(ConfigurationError, match="max_value_size"):
        Codec(max_value_size=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
def test_json_and_msgpack_readers_never_unpickle(serializer: str) -> None:
    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (exec, ("raise SystemExit('ran')",))

    planted = b"p" + pickle.dumps(Boom())
    reader = Codec(serializer=serializer)
    assert reader.decode(planted) is MISS
    assert reader.decode(b"z" + __import__("zlib").compress(planted)) is MISS
    assert reader.refused.value == 2


def test_accept_lists_the_serializers_a_reader_decodes() -> None:
    from tsot import ConfigurationError

    as_json = Codec(serializer="json").encode({"a": 1})
    as_pickle = Codec().encode({"a": 1})
    assert Codec().decode(as_json) is MISS  # a pickle reader accepts pickle only by default
    both = Codec(accept=("pickle", "json"))
    assert both.decode(as_json) == {"a": 1} and both.decode(as_pickle) == {"a": 1}
    with pytest.raises(ConfigurationError, match="must include the serializer 'json'"):
        Codec(serializer="json", accept=("pickle",))
    with pytest.raises(ConfigurationError, match="'yaml'"):
        Codec(accept=("pickle", "yaml"))


def test_signatures_bind_values_to_their_key() -> None:
    c = Codec(signer=Signer([SECRET]))
    alice = c.encode({"perms": ["admin"]}, b"app:perms:alice")
    assert c.decode(alice, b"app:perms:alice") == {"perms": ["admin"]}
    assert c.decode(alice, b"app:perms:mallory") is MISS  # copied under another key
    assert c.decode(alice, b"other:perms:alice") is MISS  # or into another namespace
    assert c.decode(alice, b"app:perms:alic") is MISS


def test_unbound_values_need_accept_unbound() -> None:
    """Values signed by tsot 0.1 (the MAC over the payload only) are misses unless opted in."""
    import hashlib
    import hmac

    key = hashlib.sha256(b"tsot.signing:" + SECRET.encode()).digest()
    payload = b"p" + pickle.dumps({"old": True})
    old = b"h" + hmac.digest(key, payload, "sha256") + payload
    assert Codec(signer=Signer([SECRET])).decode(old, b"k") is MISS
    legacy = Codec(signer=Signer([SECRET]), accept_unbound=True)
    assert legacy.decode(old, b"k") == {"old": True}
    # a bound signature never passes as an unbound one, and the reverse
    bound = legacy.encode({"new": 1}, b"k")
    assert legacy.decode(b"h" + bound[1:33] + b"\x00" + bound[33:], b"") is MISS


def test_sign_all_signs_data_values() -> None:
    from tsot import ConfigurationError

    c = Codec(signer=Signer([SECRET]), sign="all", compression="zlib", compress_threshold=100)
    for value in ("<p>page</p>", b"raw", 1.5, "x" * 5000, b"y" * 5000, {"o": 1}):
        data = c.encode(value, b"page")
        assert data[:1] == b"h", value
        assert c.decode(data, b"page") == value
        assert c.decode(data, b"other") is MISS
    assert c.encode(7, b"n") == b"7"  # ints stay plain decimal (server-side incr)
    assert c.decode(b"7", b"n") == 7
    for planted in (b"s<script>alert(1)</script>", b"bxx", b"f1.0", Codec().encode("y" * 5000)):
        assert c.decode(planted, b"page") is MISS
    assert c.decode(Codec(signer=Signer([OTHER]), sign="all").encode("p", b"page"), b"page") is MISS
    objects_only = Codec(signer=Signer([SECRET]))
    assert objects_only.decode(b"s<script>", b"page") == "<script>"  # the documented default
    with pytest.raises(ConfigurationError, match="sign='all' needs a signing secret"):
        Codec(sign="all")
    with pytest.raises(ConfigurationError, match="'sign' must be one of objects, all"):
        Codec(signer=Signer([SECRET]), sign="everything")


def test_huge_ints_round_trip_or_refuse_cleanly() -> None:
    from tsot.ints import MAX_INT_DIGITS

    c = Codec()
    for n in (10**4299, 10**4300, -(10**5000) + 7, 10**MAX_INT_DIGITS - 1):
        data = c.encode(n)
        assert data == _plain(n)
        assert c.decode(data) == n
    with pytest.raises(SerializationError, match=f"at most {MAX_INT_DIGITS} decimal digits"):
        c.encode(10**MAX_INT_DIGITS)
    assert decode_int(_plain(10**6000), "k") == 10**6000


def _plain(n: int) -> bytes:
    import sys

    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return str(n).encode()
    finally:
        sys.set_int_max_str_digits(old)


def test_max_value_size_is_the_same_bound_on_write_and_read() -> None:
    from tsot import ValueTooLarge

    c = Codec(max_value_size=100, signer=Signer([SECRET]))
    assert c.decode(c.encode(b"x" * 99)) == b"x" * 99  # tag + 99 bytes: exactly the limit
    with pytest.raises(ValueTooLarge):
        c.encode(b"x" * 100)
    too_big = Codec(signer=Signer([SECRET])).encode({"k": "v" * 100})
    assert c.decode(too_big) is MISS  # signed by the same secret, but over the reader's limit
    assert c.decode(b"b" + b"x" * 100) is MISS


def test_signatures_are_the_documented_hmac_whatever_state_signs_them() -> None:
    """docs/signing.md: HMAC-SHA256(sha256(b"tsot.signing:" + secret), 0 + len(key) + key + rest);
    the Signer may use the C state behind hmac.HMAC, the bytes must not change."""
    import hashlib
    import hmac

    secret, key, payload = "s" * 32, b"ns:k", b"p" + pickle.dumps({"a": 1})
    k = hashlib.sha256(b"tsot.signing:" + secret.encode()).digest()
    want = hmac.new(k, b"\x00" + len(key).to_bytes(4, "big") + key + payload, "sha256").digest()
    signer = Signer([secret])
    for _ in range(2):  # the keyed state is copied, never consumed
        assert signer.sign(payload, key) == want
        assert signer.verify(want, payload, key)


def _batch_forms(signer: Signer) -> list[bytes | None]:
    """Every stored form a batch can hold, for decode_many against decode: each tag signed with
    the reader's first and second secret, under another key, tampered, plus the poison list."""
    import zlib

    writers = [
        Codec(signer=Signer([SECRET]), sign="all"),
        Codec(signer=Signer([OTHER]), sign="all"),
        Codec(signer=Signer([SECRET]), serializer="json"),
        Codec(signer=Signer([SECRET]), compression="zlib", compress_threshold=10),
        Codec(),
    ]
    values = ["text", "é" * 40, b"raw", 1.5, 7, {"a": [1, 2]}, ("t",), "x" * 300]
    forms: list[bytes | None] = [None]
    for w in writers:
        for v in values:
            for key in (b"k", b"other"):
                data = w.encode(v, key)
                forms.append(data)
                forms.append(data[:-1] + bytes([data[-1] ^ 1]))  # the last byte flipped
    mac = signer.sign(b"s\xff\xfe", b"k")  # a valid signature over invalid UTF-8
    forms += [b"h" + mac + b"s\xff\xfe", b"h" + signer.sign(b"p\x80", b"k") + b"p\x80"]
    forms += [b"h" + signer.sign(b"z" + zlib.compress(b"sz"), b"k") + b"z" + zlib.compress(b"sz")]
    return forms + _poison()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"sign": "all"},
        {"sign": "objects"},
        {"sign": "all", "accept": ("pickle", "json")},
        {"sign": "all", "max_value_size": 40},
        {"accept_unbound": True},
        {"no_signer": True},
        {"rotated": True},
    ],
    ids=["default", "all", "objects", "all-json", "all-small", "unbound", "unsigned", "rotated"],
)
def test_decode_many_gives_what_decode_gives(options: dict[str, object]) -> None:
    """decode_many reads the common forms on its own; its answers must be decode's, misses and
    the count of refused values included."""
    opts = dict(options)
    secrets = [OTHER, SECRET] if opts.pop("rotated", False) else [SECRET, OTHER]
    signer = None if opts.pop("no_signer", False) else Signer(secrets)
    one, batch = Codec(signer=signer, **opts), Codec(signer=signer, **opts)  # type: ignore[arg-type]
    forms = _batch_forms(Signer([SECRET]))
    names = list(range(len(forms)))
    keys = [b"k"] * len(forms)
    want = {}
    for name, data in zip(names, forms, strict=True):
        if data is not None and (value := one.decode(data, b"k")) is not MISS:
            want[name] = value
    got = batch.decode_many(names, keys, forms)
    assert got == want
    assert [type(v) for v in got.values()] == [type(v) for v in want.values()]
    assert batch.refused.value == one.refused.value > 0
    if signer is not None:  # values signed for b"other" verify only there
        assert batch.decode_many(names, [b"other"] * len(forms), forms).keys() != got.keys()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"sign": "all"},
        {"sign": "objects"},
        {"sign": "all", "compression": "zlib", "compress_threshold": 20},
        {"compression": "zlib", "compress_threshold": 0},
        {"sign": "all", "max_value_size": 30},
        {"no_signer": True},
        {"no_signer": True, "serializer": "json"},
    ],
    ids=["default", "all", "objects", "all-zlib", "zlib-0", "all-small", "unsigned", "json"],
)
def test_encode_many_gives_what_encode_gives(options: dict[str, object]) -> None:
    """encode_many encodes and signs plain strs on its own: byte for byte what encode writes,
    and the same error for a value that cannot be written."""
    from tsot import ValueTooLarge

    opts = dict(options)
    signer = None if opts.pop("no_signer", False) else Signer([SECRET, OTHER])
    c = Codec(signer=signer, **opts)  # type: ignore[arg-type]
    values = ["", "text", "é" * 40, "x" * 19, "x" * 20, "x" * 29, "x" * 300, b"raw", 7, 1.5,
              {"a": [1]}, "\ud800"]  # fmt: skip
    for value in values:
        keys = [b"k", b"other:key", b""]
        items = [(k, value) for k in keys]
        try:
            want = [(k, c.encode(v, k)) for k, v in items]
        except (SerializationError, ValueTooLarge) as exc:
            with pytest.raises(type(exc), match=r"cannot|max_value_size"):
                c.encode_many(items)
            continue
        assert c.encode_many(items) == want, value
        for k, data in want:
            assert c.decode(data, k) == value


class _Boom:
    """A pickle that runs code when loaded: what a writer without the secret would plant."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, ("raise SystemExit('ran')",))


def test_verified_values_skip_the_hmac_only_for_the_same_bytes_under_the_same_key() -> None:
    """The memo of verified signatures (``Verified``) never lets other bytes through: a
    forgery, a value of another key, or a payload swapped under a verified MAC is checked in
    full and refused, before and after the genuine value was read."""
    from tsot.codec import Verified

    reader = Codec(signer=Signer([SECRET]))
    good = reader.encode({"perm": "read"}, b"alice")
    verified: Verified = reader._verified
    assert reader.decode(good, b"alice") == {"perm": "read"}
    assert verified.table == {b"alice": good}
    assert reader.decode(bytes(bytearray(good)), b"alice") == {"perm": "read"}  # equal bytes
    evil = b"p" + pickle.dumps(_Boom())
    for forged in (
        good[:34] + evil[1:],  # the verified MAC and tag, another pickle
        good[:1] + Signer([OTHER]).sign(evil, b"alice") + evil,  # another secret
        good[:-1] + bytes([good[-1] ^ 1]),  # one bit flipped
        good + b".",  # extended
    ):
        assert reader.decode(forged, b"alice") is MISS
        assert reader.decode_many(["v"], [b"alice"], [forged]) == {}
        assert verified.table == {b"alice": good}  # refused bytes are never remembered
    assert reader.decode(good, b"mallory") is MISS  # bound to its key: alice's bytes
    assert reader.decode_many(["v"], [b"mallory"], [good]) == {}
    assert b"mallory" not in verified.table
    other = Codec(signer=Signer([OTHER]))  # each codec remembers what its own secrets checked
    assert other.decode(good, b"alice") is MISS and not other._verified.table


def test_verified_values_follow_the_stored_value() -> None:
    reader = Codec(signer=Signer([SECRET]), sign="all")
    first, second = reader.encode("one", b"k"), reader.encode("two", b"k")
    assert reader.decode(first, b"k") == "one"
    assert reader.decode_many(["v"], [b"k"], [second]) == {"v": "two"}
    assert reader._verified.table == {b"k": second}
    assert reader.decode(first, b"k") == "one"  # a replay of the older value verifies in full
    assert reader._verified.table == {b"k": first}


def test_verified_is_bounded_and_remembers_only_immutable_bytes() -> None:
    from tsot.codec import _VERIFIED_OVERHEAD, Verified

    memo = Verified(budget=1000, value_max=300)
    for i in range(20):
        memo.record(b"k%d" % i, bytes(200))
    assert 0 < len(memo) <= 1000 // (200 + _VERIFIED_OVERHEAD)
    assert b"k19" in memo.table and b"k0" not in memo.table  # oldest out first
    memo.record(b"big", bytes(301))
    memo.record(b"mutable", bytearray(10))  # type: ignore[arg-type]
    assert b"big" not in memo.table and b"mutable" not in memo.table
    memo.record(b"k19", bytes(10))  # a new value replaces the old one's share of the budget
    assert memo.table[b"k19"] == bytes(10) and memo._size <= 1000


def test_verified_keeps_its_budget_across_threads() -> None:
    from tsot.codec import _VERIFIED_OVERHEAD, Verified

    memo = Verified(budget=20_000, value_max=1000)
    start = threading.Barrier(4)

    def record(n: int) -> None:
        start.wait()
        for i in range(2000):
            memo.record(b"k%d" % (i % 300), bytes((n * i) % 900))

    threads = [threading.Thread(target=record, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = sum(len(k) + len(v) + _VERIFIED_OVERHEAD for k, v in memo.table.items())
    assert memo._size == held <= memo.budget
