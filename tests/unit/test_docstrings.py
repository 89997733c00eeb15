"""Every public method and property of Storage and AsyncStorage says what it does."""

from __future__ import annotations

import inspect

import pytest

from tsot import AsyncStorage, Storage


def _public(cls: type) -> list[str]:
    return [name for name in dir(cls) if not name.startswith("_")]


@pytest.mark.parametrize("cls", [Storage, AsyncStorage], ids=lambda c: c.__name__)
def test_every_public_member_has_a_docstring(cls: type) -> None:
    missing = []
    for name in _public(cls):
        member = inspect.getattr_static(cls, name)
        target = member.fget if isinstance(member, property) else getattr(cls, name)
        if not callable(target) and not isinstance(member, property):
            continue  # plain attributes (none today)
        if not (target.__doc__ or "").strip():
            missing.append(name)
    assert missing == [], f"{cls.__name__} members without a docstring: {missing}"
