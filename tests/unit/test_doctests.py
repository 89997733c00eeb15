"""The examples in the public docstrings run as written."""

from __future__ import annotations

import doctest

import pytest

import tsot.config
import tsot.errors
import tsot.secrets
import tsot.storage


@pytest.mark.parametrize(
    "module",
    [tsot.storage, tsot.config, tsot.errors, tsot.secrets],
    ids=lambda m: m.__name__,
)
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0
