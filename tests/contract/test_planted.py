"""Whoever can write to the store gains nothing: bytes planted under a stored key, on every
backend (sync and async), read as a miss or as exactly the value they encode, never as an
exception; signed values do not move between keys; ints of any size store or refuse cleanly.

Planting goes through the backend itself (a sync Storage on the same location), so the bytes sit
under the exact stored key, past the codec, as another writer's would.
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.registry import Target
from tests.contract.test_properties import values
from tsot import SerializationError, Storage
from tsot.codec import MISS, Codec, Signer
from tsot.ints import MAX_INT_DIGITS
from tsot.keys import KeySpace

SECRET = "contract-signing-secret-32-bytes"
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ABSENT = "<absent>"
TAGS = [bytes([t]) for t in b"sbfpjmzZLh-0123456789"] + [b"\x00", b"\xff"]


class Planter:
    """Writes raw bytes under the stored key of ``store``'s namespace, behind the codec."""

    def __init__(self, target: Target, store: Any) -> None:
        self.keys = KeySpace(store.namespace)
        options = {**target.options, "namespace": store.namespace}
        self.raw = Storage.from_url(target.url, **options)

    def put(self, key: str, data: bytes) -> bytes:
        final = self.keys.make(key)
        self.raw.backend.set(final, data, None)
        return final

    def get(self, key: str) -> bytes | None:
        return self.raw.backend.get(self.keys.make(key))


def _mutate(data: bytes, how: str, at: int, byte: int) -> bytes:
    if how == "truncate":
        return data[: at % (len(data) + 1)]
    if how == "flip" and data:
        i = at % len(data)
        return data[:i] + bytes([data[i] ^ (byte or 1)]) + data[i + 1 :]
    if how == "retag" and data:
        return bytes([byte]) + data[1:]
    if how == "append":
        return data + bytes([byte])
    return data


mutations = st.tuples(
    st.sampled_from(["none", "truncate", "flip", "retag", "append"]),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=255),
)
foreign = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.sampled_from(TAGS), st.binary(max_size=200)).map(lambda t: t[0] + t[1]),
    st.binary(max_size=200).map(lambda b: b"z" + zlib.compress(b)),
    st.binary(max_size=200).map(lambda b: b"h" + b"\x00" * 32 + b),
)


@SETTINGS
@given(
    signed=st.booleans(),
    sign_all=st.booleans(),
    planted=st.one_of(
        foreign.map(lambda b: ("foreign", b)),
        st.tuples(values, mutations).map(lambda t: ("value", t)),
    ),
)
def test_planted_bytes_are_a_miss_or_their_exact_value(
    opener: Callable[..., Any],
    target: Target,
    signed: bool,
    sign_all: bool,
    planted: tuple[str, Any],
) -> None:
    options: dict[str, Any] = {"compression": "zlib", "compress_threshold": 64}
    if signed:
        options.update(secret=SECRET, sign="all" if sign_all else "objects")
    store = opener(**options)
    planter = Planter(target, store)
    kind, what = planted
    if kind == "foreign":
        data, exact = what, False
    else:  # a value this store would write, perhaps damaged on the way
        value, how = what
        final = planter.keys.make("k")
        data = store.codec.encode(value, final)
        if type(data) is bytes:
            data = _mutate(data, *how)
            exact = how[0] == "none"
        else:  # kept as an object in process memory: no bytes to damage
            exact = True
    final = planter.put("k", data)
    before = store.stats()["undecodable"]
    got = store.load("k", default=ABSENT)  # never raises
    many = store.load_many(["k", "absent"])  # nor does a many-key read
    if exact:
        assert got == value and type(got) is type(value)
    else:
        stored = planter.get("k")  # memcached normalises int spellings on the way
        assert stored is not None
        signs = signed and "in_process" not in target.caps  # process memory never signs
        reference = Codec(
            compression="zlib",
            signer=Signer([SECRET]) if signs else None,
            sign="all" if signs and sign_all else "objects",
        ).decode(stored, final)
        assert got == (ABSENT if reference is MISS else reference)
    assert many == ({} if got == ABSENT else {"k": got})
    if got == ABSENT:
        assert store.stats()["undecodable"] == before + 2  # load and load_many
    planter.raw.close()


def test_poison_values_are_counted_misses(opener: Callable[..., Any], target: Target) -> None:
    """The poison values that used to raise, read through every backend's single and many paths."""
    store = opener(max_value_size=1 << 20)
    planter = Planter(target, store)
    poison = {
        "foo": b"foo",
        "bad-utf8": b"s\xff",
        "bad-float": b"fnot-a-float",
        "truncated-pickle": b"p" + pickle.dumps({"a": [1, 2, 3]})[:-4],
        "z-bad-utf8": b"z" + zlib.compress(b"s\xff\xfe"),
        "zstd-garbage": b"Z\x28\xb5\x2f\xfd\x00garbage",
        "lz4-garbage": b"L\x04\x22\x4d\x18garbage",
        "zip-bomb": b"z" + zlib.compress(b"b" + b"\x00" * (4 << 20)),
        "huge-int": b"7" * (MAX_INT_DIGITS + 1),
    }
    for key, data in poison.items():
        planter.put(key, data)
    store.store("good", {"fine": True})
    for key in poison:
        assert store.load(key, default=ABSENT) == ABSENT, key
    assert store.load_many([*poison, "good"]) == {"good": {"fine": True}}
    assert store.stats()["undecodable"] == 2 * len(poison)
    planter.raw.close()


def test_signed_values_do_not_move_between_keys(opener: Callable[..., Any], target: Target) -> None:
    """Copying alice's signed value under mallory's key (or another namespace) is a miss."""
    if "in_process" in target.caps:
        pytest.skip("process memory is never signed: nothing outside the process writes there")
    app = opener(secret=SECRET)
    other = opener(secret=SECRET)
    app.store("perms:alice", {"admin": True})
    planter = Planter(target, app)
    stolen = planter.get("perms:alice")
    assert stolen is not None
    planter.put("perms:mallory", stolen)
    Planter(target, other).put("perms:alice", stolen)
    assert app.load("perms:alice") == {"admin": True}
    assert app.load("perms:mallory") is None
    assert other.load("perms:alice") is None
    assert app.load_many(["perms:alice", "perms:mallory"]) == {"perms:alice": {"admin": True}}
    planter.raw.close()


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
def test_json_and_msgpack_readers_never_unpickle(
    opener: Callable[..., Any], target: Target, serializer: str, tmp_path: Any
) -> None:
    import os

    class Plant:
        def __reduce__(self) -> tuple[Any, tuple[str]]:
            return (os.mkdir, (str(tmp_path / "ran"),))

    store = opener(serializer=serializer)
    planter = Planter(target, store)
    planter.put("p", b"p" + pickle.dumps(Plant()))
    planter.put("pz", b"z" + zlib.compress(b"p" + pickle.dumps(Plant())))
    assert store.load("p") is None and store.load("pz") is None
    assert store.load_many(["p", "pz"]) == {}
    assert not (tmp_path / "ran").exists()
    planter.raw.close()


def test_huge_ints_store_load_and_incr_exactly(store: Any) -> None:
    big = 10**5000 + 12345
    store.store("n", big)
    assert store.load("n") == big
    assert store.incr("n", 10**4400) == big + 10**4400
    assert store.load("n") == big + 10**4400
    assert store.load_many(["n"]) == {"n": big + 10**4400}
    store.store("neg", -big)
    assert store.decr("neg", 1) == -big - 1


def test_ints_past_the_limit_are_refused_before_writing(store: Any) -> None:
    store.store("n", "old")
    with pytest.raises(SerializationError, match=f"at most {MAX_INT_DIGITS} decimal digits"):
        store.store("n", 10**MAX_INT_DIGITS)
    with pytest.raises(SerializationError):
        store.store_many({"a": 1, "n": -(10**MAX_INT_DIGITS)})
    assert store.load_many(["n", "a"]) == {"n": "old"}
    top = 10**MAX_INT_DIGITS - 1  # the largest int tsot stores
    store.store("top", top)
    with pytest.raises(SerializationError, match="digits"):
        store.incr("top", 1)
    assert store.load("top") == top  # incr never leaves an unreadable value
    assert store.incr("top", -1) == top - 1


def test_incr_of_a_planted_int_past_the_limit_is_wrong_type(
    opener: Callable[..., Any], target: Target
) -> None:
    from tsot import WrongType

    store = opener()
    planter = Planter(target, store)
    planted = b"9" * (MAX_INT_DIGITS + 1)
    planter.put("n", planted)
    with pytest.raises(WrongType, match="not an integer"):
        store.incr("n", 1)
    assert planter.get("n") == planted  # left as it was
    assert store.load("n") is None  # and it reads as a miss
    planter.raw.close()
