"""Redis's glob syntax on the backends that scan their own keys: the same keys match on memory
(and RocksDB, which uses the same matcher) as on a real Redis server, edge cases included."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsot import Storage
from tsot.backends.glob import matcher

ALPHABET = "ab-]^[\\*?"


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        (b"*", b"anything", True),
        (b"a?c", b"abc", True),
        (b"a?c", b"ac", False),
        (b"[^ab]c", b"xc", True),
        (b"[c-a]x", b"bx", True),  # a reversed range, as Redis accepts
        (b"\\*", b"*", True),
        (b"\\*", b"a", False),
        (b"a.b", b"axb", False),  # a regex character is a literal
        (b"u:*", b"u:\nx", True),
        (b"[ab", b"b", True),  # a class left open is closed at the end
        (b"[a-]", b"]", True),  # the range from "a" to "]"
        (b"[]", b"a", False),
        (b"[^]", b"a", True),
    ],
)
def test_edge_cases(pattern: bytes, key: bytes, matches: bool) -> None:
    assert matcher(pattern)(key) is matches


@pytest.mark.server
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    keys=st.lists(st.text(ALPHABET, max_size=4), unique=True, max_size=12),
    patterns=st.lists(st.text(ALPHABET, max_size=6), min_size=1, max_size=6),
)
def test_memory_lists_what_redis_lists(
    redis_url: str, keys: list[str], patterns: list[str]
) -> None:
    ns = f"glob{uuid.uuid4().hex[:8]}"
    with Storage.from_url(redis_url, namespace=ns, secret=None) as redis, Storage.new_imc() as mem:
        redis.store_many(dict.fromkeys(keys, 1))
        mem.store_many(dict.fromkeys(keys, 1))
        try:
            for pattern in patterns:
                assert sorted(mem.keys(pattern)) == sorted(redis.keys(pattern)), pattern
        finally:
            redis.clear()
