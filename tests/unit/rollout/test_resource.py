"""What a user writes is accepted, and a broken spec is refused with the field named."""

from __future__ import annotations

import pytest
import yaml

from sluice.rollout.resource import RolloutError, parse
from tests.unit.rollout.conftest import CANARY


def doc(**spec: object) -> dict[str, object]:
    d = yaml.safe_load(CANARY)
    d["spec"].update(spec)
    return d


def test_the_canary_example_parses_with_durations_in_seconds() -> None:
    r = parse(doc())
    assert r.spec.analysis is not None and r.spec.analysis.interval == 10.0
    assert r.spec.strategy.canary is not None
    assert r.spec.strategy.canary.steps[1].pause is not None
    assert r.spec.strategy.canary.steps[1].pause.duration == 30.0


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"strategy": {"canary": {"steps": [{"setWeight": 101}]}}}, "setWeight"),
        ({"strategy": {"canary": {"steps": [{"setWeight": 5, "pause": {}}]}}}, "exactly one"),
        ({"strategy": {}}, "exactly one of canary"),
        ({"candidate": "v1"}, "both 'v1'"),
        ({"candidate": "V2!"}, "not a valid name"),
        ({"analysis": {"metrics": [{"name": "x", "builtin": "successRate",
                                    "condition": "about 1"}]}}, "is not '<op> <number>'"),
        ({"analysis": {"metrics": [{"name": "x", "builtin": "latencyP99",
                                    "compare": "stable", "maxIncrease": 1}]}}, "compare works"),
        ({"analysis": {"metrics": [{"name": "x", "builtin": "errorRate",
                                    "compare": "stable"}]}}, "needs maxIncrease"),
        ({"analysis": {"interval": "soon", "metrics": [
            {"name": "x", "builtin": "errorRate", "condition": "< 1"}]}}, "not a duration"),
        ({"strategy": {"shadow": {}}}, "duration or a number of requests"),
    ],
)  # fmt: skip
def test_a_broken_spec_is_refused_naming_what_is_wrong(spec: dict[str, object], words: str) -> None:
    with pytest.raises(RolloutError, match="not valid") as err:
        parse(doc(**spec))
    assert words in str(err.value)


def test_a_wrong_kind_is_refused() -> None:
    d = doc()
    d["kind"] = "Rollout"
    with pytest.raises(RolloutError, match="kind ModelRollout"):
        parse(d)
