"""The value-format options: accept, sign, max_value_size, accept_unbound (checked by name)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tsot import ConfigurationError, Storage, ValueTooLarge

SECRET = "a-signing-secret-of-32-bytes-ok!"


def test_accept_from_a_url_or_a_list() -> None:
    s = Storage.from_url("memory://accept-url?serializer=json&accept=json,msgpack")
    assert s.codec.accept == ("json", "msgpack")
    assert Storage.new_imc(accept=["pickle", "json"]).codec.accept == ("pickle", "json")
    assert Storage.new_imc(serializer="msgpack").codec.accept == ("msgpack",)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"accept": "pickle,yaml"}, "option 'accept' must name one or more of pickle, json"),
        ({"accept": ""}, "option 'accept' must name one or more"),
        ({"accept": 3}, "option 'accept' must be a list of names"),
        ({"serializer": "json", "accept": "pickle"}, "must include the serializer 'json'"),
        ({"sign": "most"}, "option 'sign' must be one of objects, all, not 'most'"),
        ({"sign": "all"}, "sign='all' needs a signing secret"),
        ({"max_value_size": 0}, "option 'max_value_size' must be >= 1"),
        ({"max_value_size": "big"}, "option 'max_value_size' must be an integer, not 'big'"),
        ({"max_value_size": 1 << 30}, "'max_value_size' must be an int from 1 to 536870912"),
        ({"accept_unbound": "maybe"}, "option 'accept_unbound' must be a boolean"),
    ],
)
def test_bad_values_name_the_option(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Storage.new_imc(**options)


def test_max_value_size_refuses_a_write_whole() -> None:
    s = Storage.new_imc(max_value_size=1000)
    s.store_many({"a": "old", "b": "old"})
    with pytest.raises(ValueTooLarge, match="max_value_size is 1000"):
        s.store_many({"a": "new", "b": "x" * 1000})
    assert s.load_many(["a", "b"]) == {"a": "old", "b": "old"}


def test_sign_all_from_a_url(tmp_path: Path) -> None:
    s = Storage.from_url(f"rocksdb://{tmp_path}/db?sign=all", secret=SECRET)
    s.store("page", "<p>hi</p>")
    assert s.backend.get(b"page")[:1] == b"h"  # type: ignore[index]
    assert s.load("page") == "<p>hi</p>"
