"""Fixtures shared by every tier, and the tier markers.

Every test is marked with its tier by the folder it lives in (``tests/integration/...`` is
``integration``, and so on for every folder named like a registered marker), so ``-m`` selects
whole tiers and no file can forget its marker (a ``pytestmark`` in a conftest is ignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import redis_server

TESTS = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before `-m` selection and the tiers' own hooks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tiers = {line.split(":")[0].strip() for line in config.getini("markers")}
    for item in items:
        folder = item.path.relative_to(TESTS).parts[0]
        if folder in tiers:
            item.add_marker(folder)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A fresh real Redis for one test."""
    with redis_server(tmp_path / "redis") as (url, _):
        yield url
