"""The e2e tier's shared stack (tests/support/rollouts.py), one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.rollouts import Stack, rollout_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with rollout_stack(tmp_path_factory.mktemp("rollouts")) as s:
        yield s
