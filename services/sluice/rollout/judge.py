"""How a measured value becomes pass, fail or inconclusive. Pure.

Two kinds of metric:

- a **condition** (``">= 0.99"``) on the candidate's value over the check's window; fewer
  samples than the minimum is inconclusive, and so is no value at all (an empty
  Prometheus answer, a missing JSON field): no data never passes and never fails.
- a **comparison with stable** (``compare: stable`` with a margin) judged by a mixture
  sequential probability ratio test (mSPRT; Johari, Pekelis and Walsh, "Always valid
  inference", 2017) on the difference of the two versions' means, using every sample since
  the analysis began. Its p-values stay valid however often they are looked at, which a
  t-test or a z-test checked at every interval is not (checking a fixed-sample test ten
  times multiplies its false alarms several-fold). The test is of the margin ``d``:
  with ``diff = candidate - stable`` oriented so that positive is worse,

  * fail when the always-valid p-value of ``diff <= d`` drops to ``alpha`` (the
    candidate is worse than stable by more than the margin);
  * pass when the always-valid p-value of ``diff >= d`` drops to ``alpha`` (it is no
    worse than stable, within the margin: a non-inferiority test);
  * otherwise inconclusive: more traffic is needed.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

from sluice.rollout.resource import CONDITION, Verdict

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
    "==": operator.eq, "!=": operator.ne,
}  # fmt: skip


def holds(condition: str, value: float) -> bool:
    """Whether ``value`` meets ``condition``.

    >>> holds(">= 0.99", 0.995), holds("< 100", 100), holds("== 0", 0.0)
    (True, False, True)
    """
    match = CONDITION.fullmatch(condition)
    if match is None:
        raise ValueError(f"condition {condition!r} is not '<op> <number>'")
    return _OPS[match.group(1)](value, float(match.group(2)))


def threshold(condition: str, value: float | None, samples: int, minimum: int) -> Verdict:
    """A condition metric's verdict.

    >>> threshold(">= 0.99", 0.95, 500, 100), threshold(">= 0.99", 0.95, 50, 100)
    ('fail', 'inconclusive')
    >>> threshold("<= 0.25", None, 500, 100)
    'inconclusive'
    """
    if value is None or math.isnan(value) or samples < minimum:
        return "inconclusive"
    return "pass" if holds(condition, value) else "fail"


@dataclass(frozen=True, slots=True)
class Arm:
    """One version's samples: count, sum and sum of squares of the per-sample values."""

    n: float
    total: float
    squares: float

    @classmethod
    def proportion(cls, events: float, n: float) -> Arm:
        """``events`` successes (or failures) out of ``n`` 0/1 samples."""
        return cls(n, events, events)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """Sample variance; for 0/1 samples shrunk off 0 and 1 ((x+0.5)/(n+1)), so that
        two arms with no errors yet still carry some uncertainty."""
        if self.n < 2:
            return 0.25
        if self.squares == self.total and 0 <= self.total <= self.n:  # 0/1 samples
            p = (self.total + 0.5) / (self.n + 1)
            return p * (1 - p)
        return max(0.0, (self.squares - self.total**2 / self.n) / (self.n - 1))


def msprt_p(diff: float, variance: float, tau2: float) -> float:
    """1 / the mixture likelihood ratio of a normal mean ``diff`` (from the null) with
    ``variance``, under a N(0, tau2) mixture: an always-valid p-value at this look.

    >>> round(msprt_p(0.0, 1e-4, 1e-4), 4)  # no difference at all: no evidence
    1.4142
    >>> round(msprt_p(0.05, 1e-4, 1e-4), 6)  # 5 standard errors away
    0.00273
    """
    if variance <= 0:
        return 0.0 if diff else 1.0
    total = variance + tau2
    log_lr = 0.5 * math.log(variance / total) + tau2 * diff * diff / (2 * variance * total)
    return math.exp(-log_lr) if log_lr < 700 else 0.0


@dataclass(frozen=True, slots=True)
class Sequential:
    verdict: Verdict
    difference: float
    """candidate - stable, in the metric's own units (not oriented)."""
    p_worse: float
    """Always-valid p-value that the candidate is no worse than stable + margin."""
    p_within: float
    """Always-valid p-value that it is worse by the margin or more."""


def compare(
    candidate: Arm,
    stable: Arm,
    *,
    margin: float,
    higher_is_worse: bool,
    alpha: float,
    minimum: int,
    before: tuple[float, float] = (1.0, 1.0),
) -> Sequential:
    """The sequential non-inferiority test of ``candidate`` against ``stable``.

    ``before`` holds the running minima of the two p-values from earlier looks (an
    always-valid p-value is the minimum over every look so far).

    Error rates of 0.2% (candidate) and 0.1% (stable), 20,000 requests each, margin 1%:
    well within the margin, so it passes.

    >>> c, s = Arm.proportion(40, 20000), Arm.proportion(20, 20000)
    >>> r = compare(c, s, margin=0.01, higher_is_worse=True, alpha=0.05, minimum=100)
    >>> r.verdict, round(r.difference, 4)
    ('pass', 0.001)

    The same candidate failing 5% of its 2,000 requests: worse by more than the margin.

    >>> c = Arm.proportion(100, 2000)
    >>> compare(c, s, margin=0.01, higher_is_worse=True, alpha=0.05, minimum=100).verdict
    'fail'
    """
    difference = candidate.mean - stable.mean
    worse = difference if higher_is_worse else -difference
    p_worse, p_within = before
    if candidate.n >= minimum and stable.n >= minimum:
        variance = candidate.variance / candidate.n + stable.variance / stable.n
        p = msprt_p(worse - margin, variance, margin * margin)
        if worse > margin:
            p_worse = min(p_worse, p)
        elif worse < margin:
            p_within = min(p_within, p)
    else:
        return Sequential("inconclusive", difference, p_worse, p_within)
    verdict: Verdict = "inconclusive"
    if p_worse <= alpha:
        verdict = "fail"
    elif p_within <= alpha:
        verdict = "pass"
    return Sequential(verdict, difference, p_worse, p_within)


def overall(verdicts: list[Verdict]) -> Verdict:
    """A check fails when any metric fails; passes only when every metric passes.

    >>> overall(["pass", "inconclusive"]), overall(["pass", "fail", "inconclusive"])
    ('inconclusive', 'fail')
    """
    if "fail" in verdicts:
        return "fail"
    return "pass" if verdicts and all(v == "pass" for v in verdicts) else "inconclusive"
