"""Which ``sign`` mode a Flask cache gets: ``all`` on network stores with a secret."""

from __future__ import annotations

from typing import Any

import pytest

from tsot_flask import config as cfg

KEY = "flask-secret-key-of-32-bytes-ok!"


@pytest.mark.parametrize(
    ("url", "config", "kwargs", "sign"),
    [
        ("redis://127.0.0.1:1/0", {"SECRET_KEY": KEY}, {}, "all"),
        ("memcached://127.0.0.1:1", {"SECRET_KEY": KEY}, {}, "all"),
        ("redis://127.0.0.1:1/0", {}, {}, "objects"),
        ("redis://127.0.0.1:1/0", {"SECRET_KEY": KEY}, {"secret": None}, "objects"),
        ("redis://127.0.0.1:1/0", {"SECRET_KEY": KEY}, {"sign": "objects"}, "objects"),
        (None, {"SECRET_KEY": KEY}, {}, "objects"),
        ("rocksdb:///tmp/x", {"SECRET_KEY": KEY}, {}, "objects"),
    ],
)
def test_sign_default(
    url: str | None, config: dict[str, Any], kwargs: dict[str, Any], sign: str
) -> None:
    settings = cfg.read("tsot_flask.TsotCache", config, kwargs, url, "CACHE_TSOT_URL")
    assert settings.options["sign"] == sign
