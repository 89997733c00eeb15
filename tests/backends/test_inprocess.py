"""Values in process memory: kept as objects where that is safe, copied where not, never signed."""

from __future__ import annotations

import dataclasses
import datetime
import pickle
import uuid
from typing import Any

import pytest

from tsot import Storage, ValueTooLarge, WrongType
from tsot.inprocess import LocalCodec, Rebuilt, frozen_size, keep

SECRET = "an-in-process-secret-of-32-bytes"


class Markup(str):
    """Like Django's SafeString: a str subclass whose instances hold nothing more."""

    __slots__ = ()


class Tagged(str):
    """A str subclass whose instances can carry attributes: not immutable."""


def _table() -> str:
    return f"memory://inproc-{uuid.uuid4().hex}"


IMMUTABLE: list[Any] = [
    "text",
    b"bytes",
    1.5,
    True,
    None,
    ("a", (1, b"b"), frozenset({2.5, None})),
    frozenset({"x", ("y", 1)}),
    Markup("<b>safe</b>"),
]


def type_name(value: Any) -> str:
    """A test id that does not depend on the hash seed (a frozenset's repr does: xdist workers
    must collect the same ids)."""
    return type(value).__name__


@pytest.mark.parametrize("value", IMMUTABLE, ids=type_name)
def test_immutable_values_are_kept_and_returned_as_they_are(value: Any) -> None:
    s = Storage.new_imc()
    s.store("k", value)
    assert type(s.backend.get(b"k")) is not bytes  # kept as an object: nothing serialized
    got = s.load("k")
    assert got is value
    assert s.load_many(["k"]) == {"k": value}


@pytest.mark.parametrize("value", [{"a": "1", "b": (2, 3)}, ["x", 1, None, ("t",)]], ids=type_name)
def test_flat_dicts_and_lists_are_copied_in_and_out(value: Any) -> None:
    s = Storage.new_imc()
    original = type(value)(value)
    s.store("k", value)
    value.clear()  # the caller's object changes after the write: nothing stored changes
    first = s.load("k")
    assert first == original and type(first) is type(original)
    first.clear()  # a reader's copy changes: the next read does not see it
    assert s.load("k") == original
    assert s.load("k") is not s.load("k")


@dataclasses.dataclass
class Record:
    name: str
    tags: list[str]
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class Slotted:
    items: list[int]
    label: str = "s"


class Stateful:
    """Restores itself through ``__setstate__``, as pickle calls it."""

    def __init__(self, parts: list[str]) -> None:
        self.parts = parts

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.restored = True

    def __eq__(self, other: object) -> bool:
        return type(other) is Stateful and vars(other) == vars(self)

    __hash__ = None  # type: ignore[assignment]


class Headers(dict[str, Any]):
    """A dict subclass with state of its own (pickle sets its items, then its __dict__)."""

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key.lower(), value)


def _headers() -> Headers:
    h = Headers(Content=["text/html"])
    h.note = ["n"]
    return h


def _tagged() -> Tagged:
    t = Tagged("attrs")
    t.extra = [1]  # type: ignore[attr-defined]
    return t


REBUILT: list[Any] = [
    {"nested": [1, 2]},
    [{"a": 1}, ("t", [2])],
    {"s": {1, 2}},
    _tagged(),
    bytearray(b"ab"),
    Record("r", ["a"], {"deep": {"x": [1]}}),
    Slotted([1, 2]),
    Stateful(["p"]),
    _headers(),
    uuid.UUID(int=7),  # slots and __setstate__
]


def _same_as_pickled(got: Any, value: Any) -> None:
    want = pickle.loads(pickle.dumps(value))
    assert got == want and type(got) is type(want) and got is not value
    assert getattr(got, "__dict__", None) == getattr(want, "__dict__", None)


@pytest.mark.parametrize("value", REBUILT, ids=type_name)
def test_mutable_objects_are_rebuilt_as_pickle_loads_them(value: Any) -> None:
    """A mutable object is pickled when stored (every check and error as before) and kept as a
    snapshot that each read rebuilds: what unpickling gives, never sharing a mutable part
    with the caller's object or with another read."""
    s = Storage.new_imc()
    s.store("k", value)
    stored = s.backend.get(b"k")
    assert type(stored) is Rebuilt and len(stored) == len(b"p" + pickle.dumps(value, 5))
    first = s.load("k")
    _same_as_pickled(first, value)
    want = pickle.loads(pickle.dumps(value))
    _scramble(value)  # the caller's object changes after the write
    _scramble(first)  # and a reader's copy
    second = s.load("k")
    _same_as_pickled(second, want)
    assert s.load_many(["k"])["k"] == want


def _scramble(value: Any) -> None:
    """Change every mutable part of ``value`` reachable from it (containers and attributes)."""
    parts = [value]
    while parts:
        part = parts.pop()
        if isinstance(part, dict):
            parts.extend(part.values())
            part["scrambled"] = True
        elif isinstance(part, list):
            parts.extend(part)
            part.append("scrambled")
        elif isinstance(part, set | bytearray):
            part.clear()
        elif type(part).__module__ == __name__:  # this module's classes
            for name in getattr(part, "__slots__", ()) or list(vars(part)):
                parts.append(getattr(part, name))


def _cyclic() -> list[Any]:
    loop: list[Any] = [1]
    loop.append(loop)
    return loop


_SHARED = [1]
SERIALIZED: list[Any] = [
    [_SHARED, _SHARED],  # one object twice: pickle keeps it one object
    _cyclic(),
    [[i] for i in range(40)],  # more parts than REBUILD_NODES
    {"when": datetime.datetime(2026, 1, 2, 3, 4, 5)},  # a reduction of its own
]


@pytest.mark.parametrize("value", SERIALIZED, ids=type_name)
def test_shared_cyclic_large_or_custom_objects_stay_pickled(value: Any) -> None:
    s = Storage.new_imc()
    s.store("k", value)
    assert type(s.backend.get(b"k")) is bytes
    got = s.load("k")
    assert repr(got) == repr(pickle.loads(pickle.dumps(value))) and got is not value
    if type(value) is list and value and value[0] is _SHARED:
        assert got[0] is got[1]


class Refuses:
    """Loads as pickle would: by calling ``__setstate__``, which fails here."""

    def __init__(self) -> None:
        self.parts = ["x"]

    def __setstate__(self, state: dict[str, Any]) -> None:
        raise ValueError("refused")


def test_a_rebuild_that_fails_is_a_counted_miss_as_unpickling_would_be() -> None:
    s = Storage.new_imc()
    s.store("k", Refuses())
    with pytest.raises(ValueError, match="refused"):
        pickle.loads(pickle.dumps(Refuses()))
    before = s.stats()["undecodable"]
    assert s.load("k", "default") == "default"
    assert s.stats()["undecodable"] == before + 1


def test_int_stays_decimal_and_incr_refuses_kept_values() -> None:
    s = Storage.new_imc()
    s.store("n", 41)
    assert s.backend.get(b"n") == b"41"
    assert s.incr("n") == 42
    s.store("s", "text")
    s.store("t", ("a",))
    for key in ("s", "t"):
        with pytest.raises(WrongType, match=key):
            s.incr(key)
    assert s.load("s") == "text"


def test_nothing_is_signed_and_every_storage_on_a_table_reads_the_others() -> None:
    url = _table()
    signed = Storage.from_url(url, secret=SECRET, sign="all")
    other = Storage.from_url(url, secret="another-secret-of-32-bytes-here!")
    plain = Storage.from_url(url, secret=None)
    jsonish = Storage.from_url(url, serializer="json", accept=["json", "pickle"])
    signed.store("page", "<p>hi</p>")
    signed.store("obj", {"deep": [1, 2]})
    plain.store("tuple", (1, "a"))
    jsonish.store("list", [[1], [2]])
    assert signed.backend.get(b"page") == "<p>hi</p>"  # a str is stored as itself
    assert type(signed.backend.get(b"obj")) is Rebuilt  # a pickled object, never signed
    for reader in (signed, other, plain, jsonish):
        assert reader.load("page") == "<p>hi</p>"
        assert reader.load("obj") == {"deep": [1, 2]}
        assert reader.load("tuple") == (1, "a")
    assert jsonish.load("list") == [[1], [2]]
    assert plain.load("list") is None  # serialized objects still obey ``accept``
    assert signed.codec.signer is None and signed.codec.sign == "objects"


def test_sign_all_without_a_secret_is_still_a_configuration_error() -> None:
    from tsot import ConfigurationError

    with pytest.raises(ConfigurationError, match="sign='all' needs a signing secret"):
        Storage.from_url(_table(), sign="all")


def test_kept_values_count_towards_max_bytes_and_max_value_size() -> None:
    s = Storage.new_imc(max_bytes=1000)
    for i in range(20):
        s.store(f"k{i}", "x" * 100)
    assert 0 < s.backend.size_bytes <= 1000  # type: ignore[attr-defined]
    assert s.load("k0") is None and s.load("k19") == "x" * 100
    with pytest.raises(ValueTooLarge, match="big"):
        s.store("big", ("y" * 2000,))
    small = Storage.new_imc(max_value_size=100)
    with pytest.raises(ValueTooLarge, match="max_value_size is 100"):
        small.store("k", "z" * 200)
    with pytest.raises(ValueTooLarge, match="max_value_size is 100"):
        small.store("k", {"a": "z" * 200})


def test_compression_still_applies_to_long_text() -> None:
    s = Storage.new_imc(compression="zlib", compress_threshold=64)
    s.store("long", "a" * 1000)
    s.store("short", "a" * 10)
    assert s.backend.get(b"long")[:1] == b"z"  # type: ignore[index]
    assert s.backend.get(b"short") == "a" * 10
    assert s.load("long") == "a" * 1000


def test_locks_compare_kept_tokens_by_value() -> None:
    s = Storage.new_imc()
    lock = s.lock("job", timeout=10)
    assert lock.acquire(blocking=False)
    assert lock.owned()
    lock.release()
    assert s.load("job") is None


def test_sizes_and_holders() -> None:
    assert frozen_size("abc") == 4
    assert frozen_size(("abc", 1)) > frozen_size("abc")
    assert frozen_size(["mutable"]) == -1
    assert frozen_size((["mutable"],)) == -1
    deep: Any = "x"
    for _ in range(40):
        deep = (deep,)
    assert frozen_size(deep) == -1  # too deep to walk: serialized instead
    assert keep(b"x" * 10, 5, None) is None
    a, b = keep(b"tok", 100, None), keep(b"tok", 100, None)
    assert a == b and a != keep("tok", 100, None)
    c = keep({"a": "b"}, 100, None)
    assert c is not None and c != keep({"a": "b"}, 100, None) and c == c
    assert len(LocalCodec().encode(("a", "b"))) == frozen_size(("a", "b"))


@pytest.mark.parametrize(
    ("max_value_size", "compression", "threshold"),
    [(8, "none", 1024), (9, "none", 1024), (400, "zlib", 10), (400, "zlib", 11), (10, "zlib", 400)],
    ids=["max8", "max9", "zlib10", "zlib11", "max10-zlib400"],
)
def test_a_str_is_kept_as_itself_exactly_when_four_bytes_a_character_fit(
    max_value_size: int, compression: str, threshold: int
) -> None:
    codec = LocalCodec(
        compression=compression, compress_threshold=threshold, max_value_size=max_value_size
    )
    limit = min(max_value_size, threshold if compression != "none" else max_value_size)
    for n in range(limit + 2):
        kept = n * 4 < limit  # the rule: within both limits whatever its UTF-8 length
        assert (n < codec.str_chars) is kept
        if kept:
            assert codec.encode("é" * n) == "é" * n


def test_pickled_objects_are_read_in_one_step_and_anything_amiss_is_still_refused() -> None:
    s = Storage.new_imc(max_value_size=100)
    s.store("obj", {"deep": [1]})
    assert s.load("obj") == {"deep": [1]}
    before = s.stats()["undecodable"]
    s.backend.set(b"bad", b"p\x80\x05not a pickle", None)
    s.backend.set(b"huge", b"p" + pickle.dumps("x" * 100), None)  # over max_value_size
    assert s.load("bad", "default") == "default"
    assert s.load("huge", "default") == "default"
    assert s.stats()["undecodable"] == before + 2
    url = _table()
    Storage.from_url(url).store("obj", {"deep": [1]})
    jsonish = Storage.from_url(url, serializer="json")
    assert jsonish.load("obj", "refused") == "refused"  # a pickle, and it accepts only json


def test_direct_calls_only_for_a_storage_that_calls_a_memory_table_itself(tmp_path: Any) -> None:
    from tsot.integration import direct_calls

    def general(*args: Any) -> Any:
        return ("general", *args)

    marker = object()
    for storage in (
        Storage.from_url(_table(), fail_open=True),  # a guard around the table
        Storage.from_url(f"rocksdb://{tmp_path}/db"),
    ):
        assert direct_calls(storage, {}, marker, 60, general, general) is None
    s = Storage.new_imc()
    keys: dict[Any, bytes] = {}
    direct = direct_calls(s, keys, marker, 60, general, general)
    assert direct is not None
    assert direct.get("k") == ("general", "k", None, None)  # not in keys yet
    keys["k"] = direct.key("k")
    assert direct.set("k", "v") is None
    assert s.load("k") == "v" and s.ttl("k") == pytest.approx(60, abs=1)
    assert direct.get("k") == "v"
    assert direct.set("k", "w", 1.5) == ("general", "k", "w", 1.5, None, False, False)
    assert direct.set("k", "w", 60, None, True) == ("general", "k", "w", 60, None, True, False)
    seen: list[Any] = []
    s.listen(seen.append)  # from now on the Storage's own path
    assert direct.get("k") == ("general", "k", None, None)
    assert direct.set("k", "x") == ("general", "k", "x", 60, None, False, False)
