from __future__ import annotations

import pytest

from sluice.router.compare import Answer, MismatchError, compare


def test_agreement_differences_and_latency_delta() -> None:
    stable = Answer(["0", "1", "1", "0"], [0.1, 0.8, 0.6, 0.4], latency=0.002)
    candidate = Answer(["0", "0", "1", "1"], [0.2, 0.3, 0.6, 0.7], latency=0.001)
    result = compare(stable, candidate)
    assert result.rows == 4
    assert result.agreed == 2
    assert result.agreement == 0.5
    assert result.disagreements == (1, 3)
    assert result.abs_diffs == pytest.approx((0.1, 0.5, 0.0, 0.3))
    assert result.latency_delta == pytest.approx(-0.001)


def test_answers_of_different_lengths_cannot_be_compared() -> None:
    with pytest.raises(MismatchError):
        compare(Answer(["1"], [0.9], 0.0), Answer([], [], 0.0))
