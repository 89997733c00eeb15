"""Values kept as objects in process memory: no signature, no serialization where none is needed.

A memory table lives in this process, so nothing outside the process can write to it: a
signature there proves nothing, and an immutable value (str, bytes, float, bool, None, and
tuples and frozensets of those) cannot be changed by the caller, so it is kept as it is and
returned as it is. A ``dict`` or ``list`` whose items are all immutable is kept as a copy and
each read returns a new copy; anything else is serialized (unsigned), so a read never hands
out the stored object; a pickled object whose graph is small and plain (``snapshot``) is kept
as a snapshot instead, which each read rebuilds as unpickling would, without unpickling.
``int`` stays plain decimal bytes, for ``incr``. With the json or msgpack serializer only str,
bytes, float, bool and None are kept (a tuple must come back as a list).

``LocalCodec`` stands in for ``Codec`` on the memory backend (docs/backends/memory.md): what it
returns from ``encode`` is the usual bytes, a plain ``str`` (stored as itself: the commonest
value, and no holder to make) or a ``Kept`` holder, and ``decode`` takes all three, so every
Storage on one named table reads what any other wrote, whatever their options.
"""

from __future__ import annotations

import copyreg
import pickle
import types
from collections.abc import Callable, Collection, Iterable, MutableMapping
from typing import Any, Final, NamedTuple, cast

from .codec import T_PICKLE, Codec
from .ints import format_int

_SCALAR_SIZE: Final = 8
"""What a float, bool or None counts towards ``max_bytes`` (about its encoded size)."""
_ITEM_SIZE: Final = 8
"""What each item of a tuple, frozenset, dict or list adds on top of its own size."""
_MAX_DEPTH: Final = 32
"""Tuples nested deeper than this are serialized instead (walking them costs more than it saves)."""
_SIMPLE: Final = frozenset((float, bool, type(None), int))
_TEXT: Final = frozenset((str, bytes))
_PLAIN: Final = frozenset((str, bytes, float, bool, type(None)))
"""What every serializer returns as it was given; the rest is kept as an object with pickle only."""
_immutable_subclass: dict[type, bool] = {}


def _frozen_class(t: type) -> bool:
    """True for a subclass of str or bytes whose instances can hold nothing else (every class
    in its MRO declares empty ``__slots__``), such as Django's SafeString."""
    known = _immutable_subclass.get(t)
    if known is None:
        known = (issubclass(t, (str, bytes))) and all(
            c.__dict__.get("__slots__", None) == ()
            for c in t.__mro__
            if c not in (str, bytes, object)
        )
        _immutable_subclass[t] = known
    return known


def frozen_size(value: Any, depth: int = 0) -> int:
    """About the bytes ``value`` would take encoded, or -1 if it is (or holds) anything mutable
    or unknown, or is nested too deep to be worth walking."""
    t = type(value)
    if t in _TEXT:
        return len(value) + 1
    if t in _SIMPLE:
        return _SCALAR_SIZE
    if t is tuple or t is frozenset:
        if depth >= _MAX_DEPTH:
            return -1
        total = _ITEM_SIZE
        for item in value:
            size = frozen_size(item, depth + 1)
            if size < 0:
                return -1
            total += size + _ITEM_SIZE
        return total
    if _frozen_class(t):
        return len(value) + 1
    return -1


class Kept:
    """A value kept as an object in a memory table; ``len`` is about its encoded size (what
    ``max_bytes`` and the event hook count). ``copy`` is how a read gets its own object: None
    for an immutable value (returned itself), else ``dict.copy`` or ``list.copy``."""

    __slots__ = ("copy", "size", "value")

    def __init__(self, value: Any, size: int, copy: Any = None) -> None:
        self.value = value
        self.size = size
        self.copy = copy

    def __len__(self) -> int:
        return self.size

    def __eq__(self, other: object) -> bool:
        # Lock tokens are compared by value (delete_if, expire_if); a copied value only equals
        # itself.
        if type(other) is not Kept:
            return NotImplemented
        if self.copy is not None or other.copy is not None:
            return self is other
        return type(self.value) is type(other.value) and bool(self.value == other.value)

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"<Kept {type(self.value).__name__} ({self.size} bytes)>"


def _items_size(items: Collection[Any]) -> int:
    """``frozen_size`` summed over ``items`` (a list, a dict or a dict's values), each plus
    ``_ITEM_SIZE``; -1 if any is mutable. All-text items are measured at C speed."""
    if set(map(type, items)) <= _TEXT:
        return sum(map(len, items)) + (_ITEM_SIZE + 1) * len(items)
    total = 0
    for item in items:
        size = frozen_size(item)
        if size < 0:
            return -1
        total += size + _ITEM_SIZE
    return total


def keep(value: Any, limit: int, compress_from: int | None) -> Kept | None:
    """The holder to store ``value`` as an object, or None if it must be serialized: it is (or
    holds) something mutable, it is over ``limit`` (so the codec raises ValueTooLarge), or it
    is a str/bytes of at least ``compress_from`` bytes (compression is on)."""
    t = type(value)
    if t is dict:
        keys = _items_size(value)
        values = _items_size(value.values()) if keys >= 0 else -1
        if values < 0 or keys + values > limit:
            return None
        return Kept(value.copy(), _ITEM_SIZE + keys + values, dict.copy)
    if t is list:
        size = _items_size(value)
        if size < 0 or size > limit:
            return None
        return Kept(value.copy(), _ITEM_SIZE + size, list.copy)
    size = frozen_size(value)
    if size < 0 or size > limit:
        return None
    if compress_from is not None and size >= compress_from and (t in _TEXT or _frozen_class(t)):
        return None
    return Kept(value, size)


Node = tuple[Callable[[Any], Any], Any]
"""How ``rebuild`` makes one part of a value anew: ``build(arg)`` (``_same`` for an immutable)."""
REBUILD_NODES: Final = 16
"""The most mutable parts (containers and instances) a value is rebuilt from; a larger graph is
unpickled (a node costs a Python call, where ``pickle.loads`` makes an object at C speed)."""
_NO_CLASSES: Final = (type, types.FunctionType, types.BuiltinFunctionType, types.ModuleType)
"""What pickle saves by name, not by ``__reduce_ex__``."""


_ATOMS: Final = _TEXT | _SIMPLE


def _atoms(items: Iterable[Any]) -> bool:
    """True if every item is exactly a str, bytes, int, float, bool or None (at C speed)."""
    return set(map(type, items)) <= _ATOMS


def _same(value: Any) -> Any:
    return value


def _dict(spec: tuple[dict[Any, Any], tuple[tuple[Any, Callable[[Any], Any], Any], ...]]) -> Any:
    out = spec[0].copy()  # every key in its place (the order pickle keeps); mutable ones anew
    for key, build, arg in spec[1]:
        out[key] = build(arg)
    return out


def _list(spec: tuple[list[Any], tuple[tuple[int, Callable[[Any], Any], Any], ...]]) -> Any:
    out = spec[0].copy()
    for i, build, arg in spec[1]:
        out[i] = build(arg)
    return out


def _tuple(spec: tuple[list[Any], tuple[tuple[int, Callable[[Any], Any], Any], ...]]) -> Any:
    return tuple(_list(spec))


def _object(spec: tuple[type, tuple[Any, ...], tuple[Node, ...] | None, Node | None]) -> Any:
    """What ``pickle.loads`` does with a ``copyreg.__newobj__`` reduction: ``cls.__new__``,
    dict items set one by one (``__setitem__``), then the state: the instance's
    ``__setstate__`` if it has one, else its ``__dict__`` updated and its slots set."""
    cls, args, items, state = spec
    obj = cls.__new__(cls, *args)
    if items is not None:
        for key, (build, arg) in items:
            obj[key] = build(arg)
    if state is not None:
        value = state[0](state[1])
        setstate = getattr(obj, "__setstate__", None)
        if setstate is not None:
            setstate(value)
            return obj
        slots = None
        if isinstance(value, tuple) and len(value) == 2:
            value, slots = value
        if value is not None:
            obj.__dict__.update(value)
        if slots is not None:
            for name, slot in slots.items():
                setattr(obj, name, slot)
    return obj


def rebuild(node: Node) -> Any:
    """A new copy of the value ``snapshot`` gave ``node`` for: its mutable parts made anew."""
    return node[0](node[1])


class _Walk:
    """One ``snapshot``: the nodes left, and the mutable objects seen (kept alive, so an id is
    never reused while it runs: a second sighting means a shared or cyclic object)."""

    __slots__ = ("left", "seen")

    def __init__(self, nodes: int) -> None:
        self.left = nodes
        self.seen: dict[int, Any] = {}

    def node(self, value: Any, depth: int = 0) -> Node | None:
        t = type(value)
        if t in _ATOMS or (t is not dict and t is not list and frozen_size(value) >= 0):
            return (_same, value)
        self.left -= 1
        if self.left < 0 or depth >= _MAX_DEPTH or id(value) in self.seen:
            return None  # too large, too deep, or shared: pickle keeps what is shared
        self.seen[id(value)] = value
        if t is dict:
            return self._dict(value, depth)
        if t is list or t is tuple:
            template: list[Any] = list(value)
            nodes = []
            if not _atoms(template):
                for i, item in enumerate(template):
                    if type(item) not in _ATOMS:
                        part = self.node(item, depth + 1)
                        if part is None:
                            return None
                        if part[0] is not _same:
                            template[i] = None
                            nodes.append((i, *part))
            if not nodes:
                return (list.copy, template) if t is list else (_same, tuple(template))
            return (_list if t is list else _tuple, (template, tuple(nodes)))
        if t is set and (_atoms(value) or all(frozen_size(item) >= 0 for item in value)):
            return (set.copy, set(value))
        if t is bytearray:
            return (bytearray, bytes(value))
        return self._object(value, depth)

    def _dict(self, value: dict[Any, Any], depth: int) -> Node | None:
        template = dict(value)
        if not _atoms(template) and not all(frozen_size(key) >= 0 for key in template):
            return None
        nodes = []
        if not _atoms(template.values()):
            for key, item in template.items():
                if type(item) not in _ATOMS:
                    part = self.node(item, depth + 1)
                    if part is None:
                        return None
                    if part[0] is not _same:
                        nodes.append((key, *part))
        for key, _, _ in nodes:
            template[key] = None  # a placeholder: its place in the order is kept
        return (_dict, (template, tuple(nodes))) if nodes else (dict.copy, template)

    def _object(self, value: Any, depth: int) -> Node | None:
        """A ``copyreg.__newobj__`` reduction (how pickle saves a plain instance), with
        arguments that are immutable, no list items and no state setter; else None."""
        cls = type(value)
        if isinstance(value, _NO_CLASSES) or cls in copyreg.dispatch_table:
            return None
        try:
            reduced = value.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
        except Exception:
            return None
        if type(reduced) is not tuple or not 2 <= len(reduced) <= 6:
            return None
        func, args, state, listitems, dictitems, setter = reduced + (None,) * (6 - len(reduced))
        if (
            func is not copyreg.__newobj__  # type: ignore[attr-defined]
            or type(args) is not tuple
            or not args
            or args[0] is not cls
            or frozen_size(args[1:]) < 0
            or listitems is not None
            or setter is not None
        ):
            return None
        items: tuple[Node, ...] | None = None
        if dictitems is not None:
            parts = []
            for key, item in dictitems:
                part = self.node(item, depth + 1)
                if frozen_size(key) < 0 or part is None:
                    return None
                parts.append((key, part))
            items = tuple(parts)
        built: Node | None = None
        if state is not None:
            built = self.node(state, depth + 1)
            if built is None:
                return None
        return (_object, (cls, args[1:], items, built))


def snapshot(value: Any, nodes: int = REBUILD_NODES) -> Node | None:
    """How to make copies of ``value`` without pickle (``rebuild``), each what
    ``pickle.loads(pickle.dumps(value))`` gives; None if that is not known to hold.

    Known for a graph of at most ``nodes`` mutable parts, none shared or cyclic: dicts, lists,
    tuples and sets of them and of immutable values (``frozen_size``), and instances that pickle
    saves with ``copyreg.__newobj__`` (the default ``__reduce_ex__``: a Django ``HttpResponse``,
    a dataclass), rebuilt as pickle loads them. The snapshot holds no mutable part of ``value``:
    whatever the caller changes afterwards, each ``rebuild`` gives the value as it was.
    """
    try:
        return _Walk(nodes).node(value)
    except Exception:  # a __reduce_ex__ or __getstate__ that fails: pickle decides
        return None


class Rebuilt(Kept):
    """An object kept as a ``snapshot`` (``value``) of what was pickled: each read rebuilds it
    (``copy`` is ``rebuild``); it counts as its pickle's size. Read only by storages that accept
    pickle, as the pickle itself would be."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<Rebuilt object ({self.size} bytes)>"


class LocalCodec(Codec):
    """The codec of a Storage on process memory: values kept as objects where that is safe,
    everything else encoded as usual but never signed (module docstring)."""

    __slots__ = ("_loads_pickles", "str_chars")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # every option is still checked by name
        # Nothing outside the process writes to a memory table: a signature proves nothing.
        self.signer = None
        self.sign = "objects"
        self._sign_all = False
        limit = self.max_value_size if self._compress is None else self.compress_threshold
        self.str_chars: int = -(-min(limit, self.max_value_size) // 4)
        """A str shorter than this is stored as itself: within max_value_size (and below the
        compression threshold) whatever its UTF-8 length (at most 4 bytes a character)."""
        self._loads_pickles = T_PICKLE in self._accept_tags

    def encode(self, value: Any, key: bytes = b"") -> bytes:
        t = type(value)
        if t is str:  # the common case first: stored as the str itself (no holder to make)
            if len(value) < self.str_chars:
                return cast("bytes", value)
            return super().encode(value, key)  # measured exactly, compressed or refused there
        if t is int:
            return format_int(value)
        if self.serializer != "pickle" and t not in _PLAIN:
            return super().encode(value, key)  # JSON and msgpack change containers' types
        compress_from = self.compress_threshold if self._compress is not None else None
        kept = keep(value, self.max_value_size, compress_from)
        if kept is None:
            data = super().encode(value, key)  # every check and error of a pickled value
            if data[:1] == b"p":  # not compressed: a mutable object within the limits
                node = snapshot(value)
                if node is not None:
                    return cast("bytes", Rebuilt(node, len(data), rebuild))
            return data
        return cast("bytes", kept)  # the memory table stores it as it is (module docstring)

    def encode_entry(self, value: Any, key: bytes, soft_ms: int, delta_ms: int) -> bytes:
        """An entry of get_or_compute carries its times in bytes: it is encoded whole (by a
        plain twin of this codec, unsigned), never kept as an object."""
        plain = self._plain
        if plain is None:
            plain = Codec.__new__(Codec)
            for name in Codec.__slots__:
                setattr(plain, name, getattr(self, name))
            self._plain = plain
        return plain.encode_entry(value, key, soft_ms, delta_ms)

    def decode(self, data: bytes, key: bytes = b"", meta: list[int] | None = None) -> Any:
        kept: Any = data
        t = type(kept)
        if t is str:
            return kept
        if t is Kept:
            return kept.value if kept.copy is None else kept.copy(kept.value)
        if t is Rebuilt:
            if not self._loads_pickles:
                return self._miss("not-accepted", key, "it is a pickled object (kept as one)")
            try:
                return rebuild(kept.value)
            except Exception as exc:  # what unpickling it would have raised
                return self._miss("undecodable", key, f"{type(exc).__name__}: {str(exc)[:200]}")
        if data[:1] == b"p" and self._loads_pickles and len(data) <= self.max_value_size:
            # a mutable object (a Django response...): Codec.decode's steps for it, in one
            # (an unsigned pickle within the limits); anything amiss is left to Codec.decode
            try:
                return pickle.loads(memoryview(data)[1:])
            except Exception:  # Codec.decode logs and counts it
                pass
        return super().decode(data, key, meta)


class Direct(NamedTuple):
    """Calls that reach a memory table in one Python call each (``direct_calls``)."""

    get: Callable[..., Any]
    """``get(key, default=None, version=None)``, Django's cache API."""
    set: Callable[..., Any] | None
    """``set(key, value, timeout=marker, version=None, nx=False, xx=False)``; None where a write
    has to go through the Storage anyway (a Redis local cache writes to the server)."""
    key: Callable[[Any], bytes]
    """The table key of one of the Storage's keys: what the ``keys`` mapping holds."""


def direct_calls(
    storage: Any,
    keys: MutableMapping[Any, bytes],
    marker: object,
    default_ttl: Any,
    general_get: Callable[..., Any],
    general_set: Callable[..., Any],
) -> Direct | None:
    """For an adapter whose ``storage`` (a sync Storage) calls a memory table directly: a
    ``get`` and a ``set`` that do what the Storage does without its layers (the table's
    ``reader`` and ``writer``, docs/backends/memory.md). For one that calls a Redis local
    cache directly: a ``get`` that answers its hits (``local_reader``; ``set`` None, a write
    goes to the server). None for any other storage.

    ``keys`` maps the adapter's keys to table keys (``key`` itself for version None, else
    ``(key, version)``); the adapter fills it with ``Direct.key`` for the keys it has made and
    checked. A key not there, a call ``general_*`` should answer (conditional writes, other
    timeouts than None or whole seconds, values the codec refuses), and every call once the
    Storage no longer calls the table itself (a listener, ``close()``) go to ``general_get``
    and ``general_set`` with the same arguments. A timeout of ``marker`` is ``default_ttl``.
    """
    table, codec = storage._b, storage.codec
    local = getattr(type(table), "local_reader", None)  # (on the type: a Deferred would open)
    get = None if local is None else local(table, storage, keys, codec.decode, general_get)
    if get is not None:
        return Direct(get, None, storage._keys.make)
    reader, writer = getattr(type(table), "reader", None), getattr(type(table), "writer", None)
    if reader is None or writer is None or not isinstance(codec, LocalCodec):
        return None  # a network backend, or a fail-open guard around the table
    return Direct(
        reader(table, storage, keys, codec.decode, general_get),
        writer(table, storage, keys, codec.encode, codec.str_chars, marker, default_ttl,
               general_set),
        storage._keys.make,
    )  # fmt: skip
