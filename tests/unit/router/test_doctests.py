"""The worked examples in the pure modules' docstrings are tests too."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from sluice.core import routes
from sluice.router import backends, breaker, codec, compare, enrich, http1, ratelimit, split


@pytest.mark.parametrize(
    "module",
    [backends, breaker, codec, compare, enrich, http1, ratelimit, split, routes],
    ids=lambda m: m.__name__,
)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
