"""Shadow comparison: stable's answer against the candidate's on the same rows. Pure.

Per request: which rows agree, the absolute difference of the score (the positive-class
probability for a binary model, else the top probability; a regressor's predicted value)
per row, and the candidate's latency minus stable's.

Two classifiers agree on a row when their labels are equal. Two regressors agree on a
row when their values are close, as numpy's ``isclose`` defines it:
``|candidate - stable| <= absolute + relative * |stable|`` (a :class:`Tolerance`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Answer:
    """What one version answered: one label and one score per row, and how long it took."""

    labels: list[str]
    scores: list[float]
    latency: float
    """Seconds, measured by the router around the upstream call."""


@dataclass(frozen=True, slots=True)
class Comparison:
    rows: int
    agreed: int
    abs_diffs: tuple[float, ...]
    """|score_candidate - score_stable| per row."""
    latency_delta: float
    """Candidate latency minus stable latency, seconds (negative: the candidate was faster)."""
    disagreements: tuple[int, ...]
    """Indexes of the rows that do not agree."""

    @property
    def agreement(self) -> float:
        """Share of rows that agree (1.0 for no rows)."""
        return self.agreed / self.rows if self.rows else 1.0


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far apart two predicted values may be and still agree."""

    relative: float = 0.05
    absolute: float = 0.0

    def close(self, stable: float, candidate: float) -> bool:
        """Whether ``candidate`` is within tolerance of ``stable``.

        >>> Tolerance(relative=0.05).close(200.0, 209.0), Tolerance(0.05).close(200.0, 211.0)
        (True, False)
        >>> Tolerance(relative=0.0, absolute=0.5).close(0.0, -0.5)
        True
        """
        return abs(candidate - stable) <= self.absolute + self.relative * abs(stable)


class MismatchError(ValueError):
    """The two answers do not cover the same rows; counted as a candidate error."""


def compare(stable: Answer, candidate: Answer, values: Tolerance | None = None) -> Comparison:
    """Compare two answers row by row: by label, or (``values`` given: regressors) by how
    close the values are.

    >>> s = Answer(["1", "0", "1"], [0.9, 0.2, 0.6], latency=0.0010)
    >>> c = Answer(["1", "1", "1"], [0.8, 0.7, 0.6], latency=0.0015)
    >>> r = compare(s, c)
    >>> r.agreed, [round(d, 3) for d in r.abs_diffs], round(r.latency_delta, 4), r.disagreements
    (2, [0.1, 0.5, 0.0], 0.0005, (1,))
    >>> round(r.agreement, 3)
    0.667
    >>> s = Answer(["150.0", "80.0"], [150.0, 80.0], latency=0.001)
    >>> c = Answer(["155.0", "90.0"], [155.0, 90.0], latency=0.001)
    >>> r = compare(s, c, Tolerance(relative=0.05))
    >>> r.agreed, r.abs_diffs, r.disagreements
    (1, (5.0, 10.0), (1,))
    """
    rows = len(stable.labels)
    if len(candidate.labels) != rows or len(candidate.scores) != len(stable.scores):
        raise MismatchError(f"candidate answered {len(candidate.labels)} rows, stable {rows}")
    if values is None:
        pairs = zip(stable.labels, candidate.labels, strict=True)
        differ = tuple(i for i, (a, b) in enumerate(pairs) if a != b)
    else:
        pairs_ = zip(stable.scores, candidate.scores, strict=True)
        differ = tuple(i for i, (a, b) in enumerate(pairs_) if not values.close(a, b))
    diffs = tuple(abs(b - a) for a, b in zip(stable.scores, candidate.scores, strict=True))
    return Comparison(
        rows=rows,
        agreed=rows - len(differ),
        abs_diffs=diffs,
        latency_delta=candidate.latency - stable.latency,
        disagreements=differ,
    )
