"""Which ``sign`` mode a CACHES entry gets: ``all`` on network stores while signing is on."""

from __future__ import annotations

import pytest

from tsot_django.options import translate


@pytest.mark.parametrize(
    ("scheme", "options", "sign"),
    [
        ("redis", {}, "all"),
        ("redis+cluster", {}, "all"),
        ("memcached", {}, "all"),
        ("memory", {}, "objects"),
        ("rocksdb", {}, "objects"),
        ("redis", {"SIGN": "objects"}, "objects"),
        ("memory", {"sign": "all"}, "all"),
        ("redis", {"SIGNING": False}, "objects"),
    ],
)
def test_sign_default(scheme: str, options: dict[str, object], sign: str) -> None:
    assert translate(options, scheme, "test")["sign"] == sign
