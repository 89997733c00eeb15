"""Compare-and-delete and compare-and-expire on memcached (the owner checks of tsot.locks): read
the value with its CAS token, then write only if the token still matches."""

from __future__ import annotations

from . import protocol as p
from .commands import Namespace, Op, one, single


def _holds(r: p.Reply, value: bytes) -> bytes | None:
    """The CAS token of a ``mg <key> v c`` reply if the key holds ``value``, else None."""
    if r.code != b"VA" or p.from_wire(r.value or b"") != value:
        return None
    return r.flag(b"c") or b"0"


def _written(ns: Namespace, key: bytes, w: p.Reply) -> bool:
    """True if a conditional write took; False if the token no longer matched."""
    if w.code in (b"HD", b"VA"):
        return True
    if w.code not in (b"EX", b"NF", b"NS"):
        p.check(w, ns.cluster.names[ns.route(key)], key)
    return False


def delete_if(ns: Namespace, key: bytes, value: bytes) -> Op[bool]:
    """``md <key> C<cas>`` after reading ``value`` with that CAS token."""
    cas = _holds((yield from one(ns, key, b"v c")), value)
    if cas is None:
        return False
    return _written(ns, key, (yield from single(ns, key, b"md", b"C" + cas)))


def expire_if(ns: Namespace, key: bytes, value: bytes, ttl_ms: int | None) -> Op[bool]:
    """The same value written back with the new expiry, under the CAS token it was read with."""
    cas = _holds((yield from one(ns, key, b"v c")), value)
    if cas is None:
        return False
    flags = b"C%b T%d" % (cas, p.exptime(ttl_ms))
    return _written(ns, key, (yield from single(ns, key, b"ms", flags, p.to_wire(value))))
