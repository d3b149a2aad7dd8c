"""The worked examples in the pure modules' docstrings are tests too."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from sluice.core import tally
from sluice.rollout import evidence, judge, plan, resource, watch


@pytest.mark.parametrize(
    "module", [evidence, judge, plan, resource, tally, watch], ids=lambda m: m.__name__
)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
