"""The worked examples in the pure modules' docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "keys",
    "codec",
    "definitions",
    "retrieval",
    "materialize",
    "service",
    "backends",
    "feast",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"sluice.feature_store.{name}")
    failed, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failed == 0
    assert tried > 0 or name == "retrieval"
