"""The worked examples in the trainer's docstrings are tests too."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from sluice.trainer import export, profile, schema


@pytest.mark.parametrize("module", [export, profile, schema], ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
