"""The value format: the same bytes on every backend (docs/format.md, docs/signing.md).

``int`` (exactly int) is plain ASCII decimal so servers can increment it natively. Every other
value starts with a one-byte tag that is never a digit or ``-``:

    s  str, UTF-8                    j  JSON object        z  zlib(inner payload)
    b  bytes, raw                    m  msgpack object     Z  zstd(inner payload)
    f  float, repr                   p  pickled object     L  lz4(inner payload)
    h  HMAC-SHA256 signature (32 bytes) over the stored key and the rest, which is a serialized
       or compressed payload, or an entry
    e  entry: soft expiry (8 bytes) and compute time (4 bytes), then a value's unsigned payload
       (written by get_or_compute; signed whole whenever signing is on)

Decoding is total: whatever bytes a backend returns, ``decode`` gives a value or ``MISS`` (logged,
rate-limited, counted), never an exception.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import struct
import threading
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol, TypeVar

from .errors import ConfigurationError, SerializationError, ValueTooLarge, WrongType, require
from .ints import MAX_INT_DIGITS, format_int, parse_int
from .keys import shown
from .logs import limited

T_STR: Final = 0x73  # s
T_BYTES: Final = 0x62  # b
T_FLOAT: Final = 0x66  # f
T_PICKLE: Final = 0x70  # p
T_JSON: Final = 0x6A  # j
T_MSGPACK: Final = 0x6D  # m
T_ZLIB: Final = 0x7A  # z
T_ZSTD: Final = 0x5A  # Z
T_LZ4: Final = 0x4C  # L
T_SIGNED: Final = 0x68  # h
T_ENTRY: Final = 0x65  # e
_ENTRY_HEAD: Final = struct.Struct(">QI")  # soft expiry (ms since the epoch, 0: none), delta ms
ENTRY_DELTA_MAX: Final = 2**32 - 1
_ENTRY_STR_AT: Final = 1 + _ENTRY_HEAD.size  # where the payload of an unsigned entry starts
MAC_SIZE: Final = 32
_INT_FIRST: Final = frozenset(b"-0123456789")
_COMPRESSED_TAGS: Final = frozenset((T_ZLIB, T_ZSTD, T_LZ4))
_DATA_TAGS: Final = frozenset((T_STR, T_BYTES, T_FLOAT))
_LZ4_MAX_RATIO: Final = 256  # an lz4 frame never inflates more than 255x (plus its header)


class _Miss:
    """The result of decoding a payload that must be treated as absent (bad signature, corrupt)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<tsot.codec.MISS>"


MISS: Final = _Miss()
_SLOW: Final = object()
"""Codec._quick's "not a common form": decode decides."""
N = TypeVar("N")

SERIALIZERS: Final = ("pickle", "json", "msgpack")
COMPRESSIONS: Final = ("none", "zlib", "zstd", "lz4")
SIGN_MODES: Final = ("objects", "all")
MAX_VALUE_SIZE: Final = 64 * 1024 * 1024
"""Default ``max_value_size``: the largest value payload written or inflated on read."""
VALUE_SIZE_CEILING: Final = 512 * 1024 * 1024
"""The largest ``max_value_size`` accepted: no backend stores a larger value (Redis's limit)."""
_OBJECT_TAG: Final = {"pickle": T_PICKLE, "json": T_JSON, "msgpack": T_MSGPACK}


def is_int_payload(data: bytes) -> bool:
    """True if ``data`` is the plain-decimal encoding of an int."""
    return bool(data) and data[0] in _INT_FIRST


def _key_prefix(key: bytes) -> bytes:
    """What a key-bound signature covers before the payload: a 0 byte (never a tag, so a bound
    MAC cannot pass as an unbound one or the reverse), the key's length, the stored key."""
    return b"\x00" + len(key).to_bytes(4, "big") + key


class _Hash(Protocol):
    def copy(self) -> _Hash: ...
    def update(self, data: bytes | memoryview, /) -> None: ...
    def digest(self) -> bytes: ...


Pads = tuple[_Hash, _Hash]
"""One secret's HMAC-SHA256 key schedule: SHA-256 states that have absorbed the key XOR ipad
(inner) and XOR opad (outer), RFC 2104. Copied per signature, never fed themselves."""


def _pads(key: bytes) -> Pads:
    block = key.ljust(64, b"\0")  # a 32-byte key: never longer than SHA-256's 64-byte block
    return (
        hashlib.sha256(bytes(b ^ 0x36 for b in block)),
        hashlib.sha256(bytes(b ^ 0x5C for b in block)),
    )


def _hmac(pads: Pads, data: bytes) -> bytes:
    """HMAC-SHA256 of ``data``: the same bytes as ``hmac.digest(key, data, "sha256")``.

    Two copied SHA-256 states cost less than one copied ``hmac.HMAC`` state (with OpenSSL 3,
    copying an HMAC context copies three digest contexts, and ``digest`` copies them again):
    0.65 us against 0.78 us for a 100 B value, and 1.5 us for the one-shot ``hmac.digest``.
    """
    inner = pads[0].copy()
    inner.update(data)
    outer = pads[1].copy()
    outer.update(inner.digest())
    return outer.digest()


class Signer:
    """HMAC-SHA256 over payloads; the first secret signs, every secret verifies (key rotation).

    Signatures cover the stored key (``_key_prefix``): a signed value verifies only under the
    key it was written to. Each secret is keyed once (``_pads``); a signature copies its states.
    """

    __slots__ = ("_pads",)

    def __init__(self, secrets: Sequence[str | bytes]) -> None:
        if not secrets:
            raise ConfigurationError("signing needs at least one secret")
        self._pads = [
            _pads(
                hashlib.sha256(
                    b"tsot.signing:" + (s.encode() if isinstance(s, str) else s)
                ).digest()
            )
            for s in secrets
        ]

    @property
    def first(self) -> Pads:
        """The first secret's key schedule (``_hmac``): the one that signs."""
        return self._pads[0]

    def sign(self, payload: bytes, key: bytes = b"") -> bytes:
        return _hmac(self._pads[0], _key_prefix(key) + payload)

    def verify(self, mac: bytes, payload: bytes, key: bytes = b"", unbound: bool = False) -> bool:
        """True if ``mac`` signs ``payload`` under ``key`` with any secret; with ``unbound``,
        also a signature of the payload alone (values written before keys were bound)."""
        bound = _key_prefix(key) + payload
        for pads in self._pads:
            if hmac.compare_digest(mac, _hmac(pads, bound)):
                return True
        if unbound:
            for pads in self._pads:
                if hmac.compare_digest(mac, _hmac(pads, payload)):
                    return True
        return False

    def __repr__(self) -> str:  # never show secrets
        return f"<Signer with {len(self._pads)} key(s)>"


VERIFIED_BUDGET: Final = 4 * 1024 * 1024
"""Bytes of signed values a codec remembers as verified (``Verified``): values, keys and an
estimate of the table's own cost per entry."""
VERIFIED_VALUE_MAX: Final = 64 * 1024
"""The largest signed value (stored bytes) remembered; a larger one is verified on every read."""
_VERIFIED_OVERHEAD: Final = 128  # a dict slot and two bytes objects' headers, roughly


class Verified:
    """The signed values last verified, by stored key: a read of the same bytes skips the HMAC.

    A signature's verdict is a function of the stored key, the stored bytes and the secrets,
    so bytes equal to bytes that verified under the same key, for the same codec (its secrets
    and ``accept_unbound`` never change), verify again: reading their verdict here is as sound
    as computing it. Only ``bytes`` (immutable) that passed the check are remembered, only by the
    codec that checked them; any other bytes under the key (a new value, a forgery, a replay of
    an older value) differ and are verified in full. Comparing equal-length bytes is not
    constant-time, which reveals nothing a writer lacks: the remembered value is what the store
    holds, readable by whoever can write there.

    Bounded by ``budget`` bytes (values up to ``value_max`` bytes each), oldest first out.
    Lookups take no lock (one ``dict.get``); a record takes the lock, once per value verified.
    """

    __slots__ = ("_lock", "_size", "budget", "table", "value_max")

    def __init__(self, budget: int = VERIFIED_BUDGET, value_max: int = VERIFIED_VALUE_MAX) -> None:
        self.table: dict[bytes, bytes] = {}
        """stored key -> the signed bytes (tag and MAC included) that verified under it."""
        self.budget = budget
        self.value_max = value_max
        self._size = 0
        self._lock = threading.Lock()

    def record(self, key: bytes, data: bytes) -> None:
        """Remember that ``data`` verified under ``key`` (call only after it did)."""
        if type(data) is not bytes or type(key) is not bytes or len(data) > self.value_max:
            return
        cost = len(key) + len(data) + _VERIFIED_OVERHEAD
        table = self.table
        with self._lock:
            old = table.pop(key, None)
            if old is not None:
                self._size -= len(key) + len(old) + _VERIFIED_OVERHEAD
            while table and self._size + cost > self.budget:
                oldest = next(iter(table))
                self._size -= len(oldest) + len(table.pop(oldest)) + _VERIFIED_OVERHEAD
            if cost <= self.budget:
                table[key] = data
                self._size += cost

    def __len__(self) -> int:
        return len(self.table)


class Counter:
    """A thread-safe count (of values decoded as misses); cheap to read."""

    __slots__ = ("_lock", "value")

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.value += 1


class _Refused(Exception):
    """A stored value that is not a valid value for this storage; ``topic`` names the kind."""

    def __init__(self, topic: str, why: str) -> None:
        super().__init__(why)
        self.topic = topic


def _compressor(name: str) -> tuple[int, Callable[[bytes], bytes]]:
    if name == "zlib":
        return T_ZLIB, lambda b: zlib.compress(b, 6)
    if name == "zstd":
        zstd: Any = require("zstandard", "zstandard", "zstd", "zstd compression")
        cctx = zstd.ZstdCompressor(level=3)  # writes the content size: readers allocate once
        return T_ZSTD, cctx.compress
    if name == "lz4":
        lz4f: Any = require("lz4.frame", "lz4", "lz4", "lz4 compression")
        return T_LZ4, lz4f.compress
    raise ConfigurationError(
        f"compression must be one of {', '.join(COMPRESSIONS)}, not {name!r}",
        option="compression",
    )


def _too_large(limit: int) -> _Refused:
    return _Refused("too-large", f"it inflates past max_value_size ({limit} bytes)")


def inflate(tag: int, data: bytes, limit: int) -> bytes:
    """Decompress a ``z``/``Z``/``L`` body, never producing more than ``limit`` bytes.

    Raises _Refused for a body that is corrupt, truncated, followed by extra bytes or larger
    than ``limit`` once inflated, and MissingDependency when zstd/lz4 is not installed.
    """
    if tag == T_ZLIB:
        d = zlib.decompressobj()
        out = d.decompress(data, limit + 1)  # stops at limit + 1 bytes of output
        if len(out) > limit:
            raise _too_large(limit)
        if not d.eof or d.unused_data:
            raise _Refused("corrupt", "truncated or trailing zlib data")
        return out
    if tag == T_ZSTD:
        zstd: Any = require("zstandard", "zstandard", "zstd", "reading zstd-compressed values")
        size = zstd.frame_content_size(data)  # from the frame header; -1 if not given
        if size > limit:
            raise _too_large(limit)
        # With a content size, zstd writes into a buffer of exactly that size and fails if the
        # frame holds more; without one, max_output_size bounds the output.
        out = zstd.ZstdDecompressor().decompress(
            data, max_output_size=limit if size < 0 else 0, allow_extra_data=False
        )
        if size >= 0 and len(out) != size:
            raise _Refused("corrupt", "zstd frame shorter than its header says")
        return bytes(out)
    lz4f: Any = require("lz4.frame", "lz4", "lz4", "reading lz4-compressed values")
    d = lz4f.LZ4FrameDecompressor()
    out = d.decompress(data, max_length=min(limit, _LZ4_MAX_RATIO * len(data) + 1024) + 1)
    if len(out) > limit:
        raise _too_large(limit)
    if not d.eof or d.unused_data:
        raise _Refused("corrupt", "truncated, oversized or trailing lz4 data")
    return bytes(out)


class Codec:
    """Encodes values to the tagged byte format and back.

    ``serializer`` picks pickle (default), json or msgpack for objects; ``compression`` compresses
    payloads of at least ``compress_threshold`` bytes when that makes them smaller; ``signer``
    signs serialized objects (and, with ``sign="all"``, str, bytes and floats too) bound to the
    stored key. ``accept`` names the object serializers a reader decodes (default: its own);
    ``max_value_size`` bounds a value's payload, written or inflated. ``accept_unbound`` also
    verifies signatures made before keys were bound (for one release).
    """

    __slots__ = (
        "_accept_tags",
        "_compress",
        "_compress_tag",
        "_dumps",
        "_mac",
        "_obj_tag",
        "_pickled",
        "_plain",
        "_sign_all",
        "_verified",
        "accept",
        "accept_unbound",
        "compress_threshold",
        "compression",
        "key_prefix",
        "max_value_size",
        "refused",
        "serializer",
        "sign",
        "signer",
    )

    def __init__(
        self,
        serializer: str = "pickle",
        compression: str = "none",
        compress_threshold: int = 1024,
        signer: Signer | None = None,
        pickle_protocol: int = pickle.HIGHEST_PROTOCOL,
        *,
        max_value_size: int = MAX_VALUE_SIZE,
        accept: Sequence[str] | None = None,
        sign: str = "objects",
        accept_unbound: bool = False,
        key_prefix: bytes = b"",
    ) -> None:
        self.key_prefix = key_prefix  # what log messages leave out of a key (its namespace)
        self.serializer = serializer
        self.compression = compression
        self.compress_threshold = compress_threshold
        self.signer = signer
        if serializer == "pickle":
            self._dumps: Callable[[Any], bytes] = lambda v: pickle.dumps(v, pickle_protocol)
        elif serializer == "json":
            self._dumps = lambda v: json.dumps(
                v, separators=(",", ":"), ensure_ascii=False, allow_nan=True
            ).encode()
        elif serializer == "msgpack":
            msgpack: Any = require("msgpack", "msgpack", "msgpack", "the msgpack serializer")
            self._dumps = lambda v: msgpack.packb(v, use_bin_type=True)
        else:
            raise ConfigurationError(
                f"serializer must be one of {', '.join(SERIALIZERS)}, not {serializer!r}",
                option="serializer",
            )
        self._obj_tag = _OBJECT_TAG[serializer]
        if compression == "none":
            self._compress: Callable[[bytes], bytes] | None = None
            self._compress_tag = 0
        else:
            self._compress_tag, self._compress = _compressor(compression)
        if compress_threshold < 0:
            raise ConfigurationError(
                f"compress_threshold must be >= 0, not {compress_threshold}",
                option="compress_threshold",
            )
        if type(max_value_size) is not int or not 0 < max_value_size <= VALUE_SIZE_CEILING:
            raise ConfigurationError(
                f"option 'max_value_size' must be an int from 1 to {VALUE_SIZE_CEILING} "
                f"(no backend stores more), not {max_value_size!r}",
                option="max_value_size",
            )
        self.max_value_size = max_value_size
        self.accept = tuple(accept) if accept is not None else (serializer,)
        unknown = [a for a in self.accept if a not in SERIALIZERS]
        if unknown:
            raise ConfigurationError(
                f"option 'accept' names unknown serializer(s) {', '.join(map(repr, unknown))}; "
                f"choose from {', '.join(SERIALIZERS)}",
                option="accept",
            )
        if serializer not in self.accept:
            raise ConfigurationError(
                f"option 'accept' ({', '.join(self.accept)}) must include the serializer "
                f"{serializer!r}, or this storage could not read its own values",
                option="accept",
            )
        self._accept_tags = frozenset(_OBJECT_TAG[a] for a in self.accept)
        self._pickled = T_PICKLE in self._accept_tags
        if sign not in SIGN_MODES:
            raise ConfigurationError(
                f"option 'sign' must be one of {', '.join(SIGN_MODES)}, not {sign!r}",
                option="sign",
            )
        if sign == "all" and signer is None:
            raise ConfigurationError(
                "option sign='all' needs a signing secret (option 'secret')", option="secret"
            )
        self.sign = sign
        self._sign_all = sign == "all"
        self.accept_unbound = accept_unbound
        self.refused = Counter()
        self._plain: Codec | None = None
        self._mac = signer.first if signer is not None else None  # what _quick verifies with
        self._verified = Verified()  # this codec's own: its secrets decided every entry

    # -- encoding ---------------------------------------------------------------------------
    def encode(self, value: Any, key: bytes = b"") -> bytes:
        """Encode any value for the stored key ``key`` (signatures are bound to it).

        Raises SerializationError naming the value's type if it cannot be encoded, and
        ValueTooLarge if its payload is over ``max_value_size``.
        """
        t = type(value)
        if t is int:
            return format_int(value)
        if t is str:
            try:
                return self._finish(b"s" + value.encode(), self._sign_all, key)
            except UnicodeEncodeError as exc:
                raise SerializationError(f"str value cannot be encoded as UTF-8: {exc}") from None
        if t is bytes:
            return self._finish(b"b" + value, self._sign_all, key)
        if t is float:
            data = b"f" + repr(value).encode()
            return b"h" + self.signer.sign(data, key) + data if self._sign_all else data  # type: ignore[union-attr]
        try:
            body = self._dumps(value)
        except Exception as exc:
            raise SerializationError(
                f"cannot serialize the value for key {shown(key)} (type "
                f"{t.__module__}.{t.__qualname__}) with {self.serializer}: {exc}"
            ) from exc
        return self._finish(bytes((self._obj_tag,)) + body, True, key)

    def encode_many(self, items: Sequence[tuple[bytes, Any]]) -> list[tuple[bytes, bytes]]:
        """``[(key, encode(value, key)), ...]``, raising as ``encode`` does for the first value
        that cannot be encoded.

        A str that stays uncompressed (the usual batch: with ``sign="all"``, signed) is
        encoded and signed here, one HMAC and no call chain per value; every other value
        goes through ``encode``.
        """
        out: list[tuple[bytes, bytes]] = []
        append, encode = out.append, self.encode
        if type(self).encode is not Codec.encode:  # a subclass stores values its own way
            return [(key, encode(value, key)) for key, value in items]
        pads = self._mac if self._sign_all else None
        limit = self.max_value_size
        if self._compress is not None:
            limit = min(limit, self.compress_threshold - 1)
        for key, value in items:
            if type(value) is str:
                try:
                    payload = b"s" + value.encode()
                except UnicodeEncodeError:
                    payload = b""  # encode raises the error that names it
                if payload and len(payload) <= limit:
                    if pads is None:
                        append((key, payload))
                        continue
                    # _hmac, inlined: key-bound (_key_prefix) with the first secret
                    inner = pads[0].copy()
                    inner.update(b"\x00" + len(key).to_bytes(4, "big") + key + payload)
                    outer = pads[1].copy()
                    outer.update(inner.digest())
                    append((key, b"h" + outer.digest() + payload))
                    continue
            append((key, encode(value, key)))
        return out

    def encode_entry(self, value: Any, key: bytes, soft_ms: int, delta_ms: int) -> bytes:
        """Encode ``value`` as an entry of get_or_compute: ``e``, its soft expiry (ms since the
        epoch, 0 for none) and compute time (ms, capped), then the value's unsigned payload.

        With a signer the whole entry is signed (whatever ``sign`` says): its times decide what
        readers serve. Raises as ``encode`` does.
        """
        if type(value) is int:
            inner = format_int(value)
        else:
            inner = self.encode(value, key) if self.signer is None else self._unsigned(value, key)
        head = _ENTRY_HEAD.pack(max(0, soft_ms), min(max(0, delta_ms), ENTRY_DELTA_MAX))
        entry = b"e" + head + inner
        if self.signer is not None:
            return b"h" + self.signer.sign(entry, key) + entry
        return entry

    def _unsigned(self, value: Any, key: bytes) -> bytes:
        """The payload ``encode`` would write for ``value``, without any signature."""
        plain = self._plain
        if plain is None:  # a twin of this codec without a signer, made once
            plain = Codec.__new__(Codec)
            for name in Codec.__slots__:
                setattr(plain, name, getattr(self, name))
            plain.signer, plain._sign_all, plain._mac = None, False, None
            self._plain = plain
        return plain.encode(value, key)

    def _finish(self, payload: bytes, signed: bool, key: bytes) -> bytes:
        if len(payload) > self.max_value_size:
            raise ValueTooLarge(
                f"value for key {shown(key)} is {len(payload)} bytes once serialized; "
                f"max_value_size is {self.max_value_size}"
            )
        if self._compress is not None and len(payload) >= self.compress_threshold:
            packed = self._compress(payload)
            if len(packed) + 1 < len(payload):
                payload = bytes((self._compress_tag,)) + packed
        if signed and self.signer is not None:
            return b"h" + self.signer.sign(payload, key) + payload
        return payload

    # -- decoding ---------------------------------------------------------------------------
    def decode(self, data: bytes, key: bytes = b"", meta: list[int] | None = None) -> Any:
        """The value ``data`` (stored under ``key``) holds, or MISS for anything that is not a
        valid value for this storage; never raises. A miss is logged (rate-limited, the key
        shortened) and counted in ``refused``."""
        if data[:1] == b"s" and not self._sign_all and len(data) <= self.max_value_size:
            try:
                return data[1:].decode()  # the commonest form, without a call
            except UnicodeDecodeError:
                pass  # _decode logs it
        else:
            value = self._quick(data, key)  # the other common forms
            if value is not _SLOW:
                return value
        try:
            if not data:
                raise _Refused("corrupt", "empty payload")
            return self._decode(data, key, meta)
        except _Refused as exc:
            return self._miss(exc.topic, key, str(exc))
        except Exception as exc:  # corrupt bytes, a missing extra, a failing deserializer
            why = f"{type(exc).__name__}: {str(exc)[:200]}"
            return self._miss("undecodable", key, why)

    def decode_many(
        self, names: Sequence[N], keys: Sequence[bytes], found: Sequence[bytes | None]
    ) -> dict[N, Any]:
        """``{name: value}`` for each stored value of ``found`` (``None``: absent) that decodes,
        as ``decode`` of each under the stored key of ``keys`` at the same index would give.

        A batch is mostly one form: a str, bytes or pickle signed with the first secret (with
        ``sign="all"``, every one). Those are checked and read here, one HMAC per value and no
        call per value; every other value goes through ``decode``.
        """
        out: dict[N, Any] = {}
        pads = self._mac if self.signer is not None else None  # (a subclass may drop signer)
        decode = self.decode
        limit = self.max_value_size + 1 + MAC_SIZE
        pickled, compare = self._pickled, hmac.compare_digest
        seen, record = self._verified.table.get, self._verified.record
        for name, key, data in zip(names, keys, found, strict=True):
            if data is None:
                continue
            # Literals, not the T_* names: a global lookup per value is a tenth of the rest.
            if (
                pads is not None
                and type(data) is bytes
                and 34 <= len(data) <= limit
                and data[0] == 0x68  # h
            ):
                tag = data[33]  # after the tag and the 32-byte MAC
                if tag == 0x73 or tag == 0x62 or tag == 0x70:  # s, b, p
                    ok = seen(key) == data  # the bytes last verified under key (Verified)
                    if not ok:
                        # _hmac, inlined: key-bound (_key_prefix) with the first secret
                        inner = pads[0].copy()
                        inner.update(b"\x00" + len(key).to_bytes(4, "big") + key + data[33:])
                        outer = pads[1].copy()
                        outer.update(inner.digest())
                        ok = compare(data[1:33], outer.digest())
                        if ok:
                            record(key, data)
                    if ok:
                        try:
                            if tag == 0x73:
                                out[name] = data[34:].decode()
                                continue
                            if tag == 0x62:
                                out[name] = data[34:]
                                continue
                            if pickled:
                                out[name] = pickle.loads(data[34:])
                                continue
                        except Exception:  # decode below logs and counts it
                            pass
            value = decode(data, key)
            if value is not MISS:
                out[name] = value
        return out

    def _quick(self, data: bytes, key: bytes) -> Any:
        """The value of ``data`` if it is a common form that checks out, else ``_SLOW``.

        Common: a str, bytes or (where accepted) pickled payload of at most ``max_value_size``
        bytes, signed under ``key`` with the first secret, or unsigned where that is allowed
        (a str or bytes unless ``sign="all"``; a pickle only without a signer). Never raises
        and never decides a miss: ``_decode`` takes every other case and gives its verdict.
        ``decode_many`` reads the signed forms the same way.
        """
        try:
            tag = data[0]
            if tag == T_SIGNED:
                pads = self._mac
                if pads is None or len(data) - (1 + MAC_SIZE) > self.max_value_size:
                    return _SLOW
                tag = data[1 + MAC_SIZE]  # IndexError for a truncated signature: _SLOW
                verified = self._verified
                if verified.table.get(key) != data:  # not the bytes last verified under key
                    # _hmac over a view: no copy of the payload
                    inner = pads[0].copy()
                    inner.update(_key_prefix(key))
                    inner.update(memoryview(data)[1 + MAC_SIZE :])
                    outer = pads[1].copy()
                    outer.update(inner.digest())
                    if not hmac.compare_digest(data[1 : 1 + MAC_SIZE], outer.digest()):
                        return _SLOW  # another secret, an unbound signature, or a bad one
                    verified.record(key, data)
                if tag == T_STR:
                    return data[2 + MAC_SIZE :].decode()
                if tag == T_BYTES:
                    return data[2 + MAC_SIZE :]
                if tag == T_PICKLE and self._pickled:
                    return pickle.loads(data[2 + MAC_SIZE :])
                return _SLOW
            if len(data) > self.max_value_size or self._sign_all:
                return _SLOW
            if tag == T_STR:
                return data[1:].decode()
            if tag == T_BYTES:
                return data[1:]
            if tag == T_PICKLE and self._pickled and self.signer is None:
                return pickle.loads(data[1:])
        except Exception:  # _decode gives the verdict (and the log line) on its own
            pass
        return _SLOW

    def decode_entry(self, data: bytes, key: bytes = b"") -> tuple[Any, int, int] | _Miss:
        """``(value, soft_ms, delta_ms)`` for an entry (``encode_entry``), ``(value, 0, -1)`` for
        any other value (no soft expiry, unknown compute time), or MISS; never raises."""
        meta = [0, -1]  # decode overwrites it for an entry
        value = self.decode(data, key, meta)  # (a subclass may read other stored forms)
        return value if value is MISS else (value, meta[0], meta[1])

    def decode_times(self, data: bytes, key: bytes, times: list[int]) -> Any:
        """``decode(data, key, times)`` (the value; an entry's soft expiry and compute time into
        ``times``), without its layers for the common entry of an unsigned storage: one holding
        a str (a memory table's entries, which are never signed). Never raises."""
        if (
            type(data) is bytes
            and len(data) > _ENTRY_STR_AT
            and data[0] == T_ENTRY
            and data[_ENTRY_STR_AT] == T_STR
            and self.signer is None
            and len(data) - _ENTRY_STR_AT <= self.max_value_size
        ):
            try:
                value = data[_ENTRY_STR_AT + 1 :].decode()
            except UnicodeDecodeError:
                return self.decode(data, key, times)  # a miss, logged and counted
            times[0], times[1] = _ENTRY_HEAD.unpack_from(data, 1)
            return value
        return self.decode(data, key, times)

    def _decode(self, data: bytes, key: bytes, meta: list[int] | None = None) -> Any:
        limit = self.max_value_size
        if len(data) > limit + 1 + MAC_SIZE + 1 + _ENTRY_HEAD.size:
            raise _Refused("too-large", f"it is {len(data)} bytes, over max_value_size ({limit})")
        tag = data[0]
        if tag in _INT_FIRST:
            value = parse_int(data)
            if value is None:
                raise _Refused("corrupt", f"not a decimal int of at most {MAX_INT_DIGITS} digits")
            return value
        signer = self.signer
        signed = False
        if tag == T_SIGNED:
            if len(data) <= 1 + MAC_SIZE:
                raise _Refused("corrupt", "truncated signature")
            mac, data = data[1 : 1 + MAC_SIZE], data[1 + MAC_SIZE :]
            if signer is not None and not signer.verify(mac, data, key, self.accept_unbound):
                raise _Refused(
                    "bad-signature",
                    "its signature does not match (another secret, another key, or tampered)",
                )
            signed = True
            tag = data[0]
        elif self._sign_all:
            raise _Refused(
                "unsigned", "it is a value without a signature and this storage signs every value"
            )
        if tag == T_ENTRY:
            if signer is not None and not signed:
                raise _Refused("unsigned", "it is an entry without a signature")
            if len(data) <= 1 + _ENTRY_HEAD.size:
                raise _Refused("corrupt", "truncated entry")
            soft, delta = _ENTRY_HEAD.unpack_from(data, 1)
            data = data[1 + _ENTRY_HEAD.size :]
            tag = data[0]
            if tag in (T_SIGNED, T_ENTRY):
                raise _Refused("corrupt", "an entry inside an entry or signature")
            if meta is not None:
                meta[0], meta[1] = soft, delta
            if tag in _INT_FIRST:
                value = parse_int(data)
                if value is None:
                    raise _Refused("corrupt", "an entry holding a malformed int")
                return value
        if tag in _COMPRESSED_TAGS:
            data = inflate(tag, data[1:], limit)
            tag = data[0]
        elif len(data) > limit:  # the payload, tag included, as _finish measures it
            raise _Refused("too-large", f"it is over max_value_size ({limit})")
        if tag == T_STR:
            return data[1:].decode()
        if tag == T_BYTES:
            return data[1:]
        if tag == T_FLOAT:
            return float(data[1:].decode("ascii"))
        if tag in self._accept_tags:
            if signer is not None and not signed:
                raise _Refused(
                    "unsigned",
                    "it is an object without a signature; values must be written with the "
                    "same signing secret",
                )
            return self._load_object(tag, data[1:])
        if tag in (T_PICKLE, T_JSON, T_MSGPACK):
            raise _Refused(
                "not-accepted",
                f"it is a {chr(tag)!r} object and this storage accepts {', '.join(self.accept)}",
            )
        raise _Refused("corrupt", f"unknown tag {tag:#04x}")

    def _miss(self, topic: str, key: bytes, why: str) -> _Miss:
        self.refused.add()
        limited.warning(
            topic,
            "tsot: ignored the stored value of key %s (%s); treated as a miss",
            shown(key, self.key_prefix),
            why,
        )
        return MISS

    @staticmethod
    def _load_object(tag: int, body: bytes) -> Any:
        if tag == T_PICKLE:
            return pickle.loads(body)
        if tag == T_JSON:
            return json.loads(body)
        msgpack: Any = require("msgpack", "msgpack", "msgpack", "reading msgpack values")
        return msgpack.unpackb(body, raw=False)

    def __repr__(self) -> str:
        return (
            f"Codec(serializer={self.serializer!r}, compression={self.compression!r}, "
            f"signed={self.signer is not None}, sign={self.sign!r})"
        )


def decode_int(data: bytes, key: object) -> int:
    """Parse a stored payload that must be an int (for incr); raise WrongType naming ``key``."""
    value = parse_int(data)
    if value is None:
        raise WrongType(f"value of key {shown(key)} is not an integer")
    return value
