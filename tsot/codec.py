"""The value format: the same bytes on every backend (docs/format.md).

``int`` (exactly int) is plain ASCII decimal so servers can increment it natively. Every other
value starts with a one-byte tag that is never a digit or ``-``:

    s  str, UTF-8                    j  JSON object        z  zlib(inner payload)
    b  bytes, raw                    m  msgpack object     Z  zstd(inner payload)
    f  float, repr                   p  pickled object     L  lz4(inner payload)
    h  HMAC-SHA256 signature (32 bytes) over the rest, which is a serialized or compressed payload
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Final

from .errors import ConfigurationError, SerializationError, WrongType, require
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
MAC_SIZE: Final = 32
_INT_FIRST: Final = frozenset(b"-0123456789")
_OBJECT_TAGS: Final = frozenset((T_PICKLE, T_JSON, T_MSGPACK))
_COMPRESSED_TAGS: Final = frozenset((T_ZLIB, T_ZSTD, T_LZ4))


class _Miss:
    """The result of decoding a payload that must be treated as absent (bad signature, corrupt)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<tsot.codec.MISS>"


MISS: Final = _Miss()

SERIALIZERS: Final = ("pickle", "json", "msgpack")
COMPRESSIONS: Final = ("none", "zlib", "zstd", "lz4")


def is_int_payload(data: bytes) -> bool:
    """True if ``data`` is the plain-decimal encoding of an int."""
    return bool(data) and data[0] in _INT_FIRST


class Signer:
    """HMAC-SHA256 over payloads; the first secret signs, every secret verifies (key rotation)."""

    __slots__ = ("_keys",)

    def __init__(self, secrets: Sequence[str | bytes]) -> None:
        if not secrets:
            raise ConfigurationError("signing needs at least one secret")
        self._keys = [
            hashlib.sha256(b"tsot.signing:" + (s.encode() if isinstance(s, str) else s)).digest()
            for s in secrets
        ]

    def sign(self, payload: bytes) -> bytes:
        return hmac.digest(self._keys[0], payload, "sha256")

    def verify(self, mac: bytes, payload: bytes) -> bool:
        return any(
            hmac.compare_digest(mac, hmac.digest(key, payload, "sha256")) for key in self._keys
        )

    def __repr__(self) -> str:  # never show secrets
        return f"<Signer with {len(self._keys)} key(s)>"


def _compressor(name: str) -> tuple[int, Callable[[bytes], bytes]]:
    if name == "zlib":
        return T_ZLIB, lambda b: zlib.compress(b, 6)
    if name == "zstd":
        zstd: Any = require("zstandard", "zstandard", "zstd", "zstd compression")
        cctx = zstd.ZstdCompressor(level=3)
        return T_ZSTD, cctx.compress
    if name == "lz4":
        lz4f: Any = require("lz4.frame", "lz4", "lz4", "lz4 compression")
        return T_LZ4, lz4f.compress
    raise ConfigurationError(f"compression must be one of {', '.join(COMPRESSIONS)}, not {name!r}")


def _decompress(tag: int, data: bytes) -> bytes:
    if tag == T_ZLIB:
        return zlib.decompress(data)
    if tag == T_ZSTD:
        zstd: Any = require("zstandard", "zstandard", "zstd", "reading zstd-compressed values")
        return bytes(zstd.ZstdDecompressor().decompressobj().decompress(data))
    lz4f: Any = require("lz4.frame", "lz4", "lz4", "reading lz4-compressed values")
    return bytes(lz4f.decompress(data))


class Codec:
    """Encodes values to the tagged byte format and back.

    ``serializer`` picks pickle (default), json or msgpack for objects; ``compression`` compresses
    payloads of at least ``compress_threshold`` bytes when that makes them smaller; ``signer``
    signs serialized objects and refuses (as a logged miss) any object payload it cannot verify.
    """

    __slots__ = (
        "_compress",
        "_compress_tag",
        "_dumps",
        "_loads",
        "_obj_tag",
        "compress_threshold",
        "compression",
        "serializer",
        "signer",
    )

    def __init__(
        self,
        serializer: str = "pickle",
        compression: str = "none",
        compress_threshold: int = 1024,
        signer: Signer | None = None,
        pickle_protocol: int = pickle.HIGHEST_PROTOCOL,
    ) -> None:
        self.serializer = serializer
        self.compression = compression
        self.compress_threshold = compress_threshold
        self.signer = signer
        if serializer == "pickle":
            self._obj_tag = T_PICKLE
            self._dumps: Callable[[Any], bytes] = lambda v: pickle.dumps(v, pickle_protocol)
        elif serializer == "json":
            self._obj_tag = T_JSON
            self._dumps = lambda v: json.dumps(
                v, separators=(",", ":"), ensure_ascii=False, allow_nan=True
            ).encode()
        elif serializer == "msgpack":
            msgpack: Any = require("msgpack", "msgpack", "msgpack", "the msgpack serializer")
            self._obj_tag = T_MSGPACK
            self._dumps = lambda v: msgpack.packb(v, use_bin_type=True)
        else:
            raise ConfigurationError(
                f"serializer must be one of {', '.join(SERIALIZERS)}, not {serializer!r}"
            )
        if compression == "none":
            self._compress: Callable[[bytes], bytes] | None = None
            self._compress_tag = 0
        else:
            self._compress_tag, self._compress = _compressor(compression)
        if compress_threshold < 0:
            raise ConfigurationError(f"compress_threshold must be >= 0, not {compress_threshold}")

    # -- encoding ---------------------------------------------------------------------------
    def encode(self, value: Any) -> bytes:
        """Encode any value; raise SerializationError naming its type if it cannot be."""
        t = type(value)
        if t is int:
            return str(value).encode()
        if t is str:
            try:
                return self._finish(b"s" + value.encode(), False)
            except UnicodeEncodeError as exc:
                raise SerializationError(f"str value cannot be encoded as UTF-8: {exc}") from None
        if t is bytes:
            return self._finish(b"b" + value, False)
        if t is float:
            return b"f" + repr(value).encode()
        try:
            body = self._dumps(value)
        except Exception as exc:
            raise SerializationError(
                f"cannot serialize value of type {t.__module__}.{t.__qualname__} with "
                f"{self.serializer}: {exc}"
            ) from exc
        return self._finish(bytes((self._obj_tag,)) + body, True)

    def encode_int(self, value: int) -> bytes:
        if type(value) is not int:
            raise WrongType(f"expected an int, got {type(value).__name__} {value!r}")
        return str(value).encode()

    def _finish(self, payload: bytes, is_object: bool) -> bytes:
        if self._compress is not None and len(payload) >= self.compress_threshold:
            packed = self._compress(payload)
            if len(packed) + 1 < len(payload):
                payload = bytes((self._compress_tag,)) + packed
        if is_object and self.signer is not None:
            return b"h" + self.signer.sign(payload) + payload
        return payload

    # -- decoding ---------------------------------------------------------------------------
    def decode(self, data: bytes) -> Any:
        """Decode a stored payload; return MISS (and log) for one that must not be trusted."""
        if not data:
            return _corrupt("empty payload")
        tag = data[0]
        if tag == T_STR:
            return data[1:].decode()
        if tag == T_BYTES:
            return data[1:]
        if tag in _INT_FIRST:
            try:
                return int(data)
            except ValueError:
                return _corrupt("malformed integer")
        if tag == T_FLOAT:
            return float(data[1:])
        signed = False
        if tag == T_SIGNED:
            if len(data) <= 1 + MAC_SIZE:
                return _corrupt("truncated signature")
            mac, data = data[1 : 1 + MAC_SIZE], data[1 + MAC_SIZE :]
            if self.signer is not None and not self.signer.verify(mac, data):
                limited.warning(
                    "bad-signature",
                    "tsot: ignored a stored object whose signature does not match (a miss)",
                )
                return MISS
            signed = True
            tag = data[0]
        if tag in _COMPRESSED_TAGS:
            try:
                data = _decompress(tag, data[1:])
            except ImportError:
                raise
            except Exception:
                return _corrupt("undecompressable payload")
            if not data:
                return _corrupt("empty compressed payload")
            tag = data[0]
            if tag == T_STR:
                return data[1:].decode()
            if tag == T_BYTES:
                return data[1:]
        if tag in _OBJECT_TAGS:
            if self.signer is not None and not signed:
                limited.warning(
                    "unsigned",
                    "tsot: ignored a stored object without a signature (treated as a miss); "
                    "values must be written with the same signing secret",
                )
                return MISS
            return self._load_object(tag, data[1:])
        return _corrupt(f"unknown tag {tag:#04x}")

    @staticmethod
    def _load_object(tag: int, body: bytes) -> Any:
        try:
            if tag == T_PICKLE:
                return pickle.loads(body)
            if tag == T_JSON:
                return json.loads(body)
            msgpack: Any = require("msgpack", "msgpack", "msgpack", "reading msgpack values")
            return msgpack.unpackb(body, raw=False)
        except ImportError:
            raise
        except Exception as exc:
            limited.warning(
                "undecodable",
                "tsot: could not deserialize a stored object (%s: %s); treated as a miss",
                type(exc).__name__,
                exc,
            )
            return MISS

    def __repr__(self) -> str:
        return (
            f"Codec(serializer={self.serializer!r}, compression={self.compression!r}, "
            f"signed={self.signer is not None})"
        )


def _corrupt(why: str) -> _Miss:
    limited.warning("corrupt", "tsot: ignored a corrupt stored value (%s); treated as a miss", why)
    return MISS


def decode_int(data: bytes, key: object) -> int:
    """Parse a stored payload that must be an int (for incr); raise WrongType naming ``key``."""
    if is_int_payload(data):
        try:
            return int(data)
        except ValueError:
            pass
    raise WrongType(f"value of key {key!r} is not an integer")
