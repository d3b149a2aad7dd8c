"""Fixtures shared by every integration test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import procs


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real three-primary Redis Cluster on 127.0.0.1, once a session; the URL of one node."""
    with procs.redis_cluster(tmp_path_factory.mktemp("cluster")) as url:
        yield url
