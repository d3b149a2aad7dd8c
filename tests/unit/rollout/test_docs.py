"""docs/rollouts.md's examples are what users copy: each one must be accepted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sluice.rollout.resource import parse

DOCS = Path(__file__).resolve().parents[3] / "docs" / "rollouts.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.S)


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: yaml.safe_load(b)["metadata"]["name"])
def test_every_example_is_a_valid_model_rollout(block: str) -> None:
    rollout = parse(yaml.safe_load(block))
    assert rollout.spec.model == "churn"
