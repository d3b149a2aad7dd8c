"""The worked examples in the pure modules' docstrings are tests too."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from sluice.drift_monitor import (
    backends,
    batch,
    evaluate,
    feedback,
    monitor,
    performance,
    stats,
    verdict,
    windows,
)


@pytest.mark.parametrize(
    "module",
    [stats, verdict, windows, batch, evaluate, performance, feedback, monitor, backends],
    ids=lambda m: m.__name__,
)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
