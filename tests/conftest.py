"""Fixtures shared by every tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import redis_server


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A fresh real Redis for one test."""
    with redis_server(tmp_path / "redis") as (url, _):
        yield url
