"""Shadow comparison: stable's answer against the candidate's on the same rows. Pure.

Per request: which rows' labels agree, the absolute difference of the score (the
positive-class probability for a binary model, else the top probability) per row, and
the candidate's latency minus stable's.
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
    """Indexes of the rows whose labels differ."""

    @property
    def agreement(self) -> float:
        """Share of rows whose labels agree (1.0 for no rows)."""
        return self.agreed / self.rows if self.rows else 1.0


class MismatchError(ValueError):
    """The two answers do not cover the same rows; counted as a candidate error."""


def compare(stable: Answer, candidate: Answer) -> Comparison:
    """Compare two answers row by row.

    >>> s = Answer(["1", "0", "1"], [0.9, 0.2, 0.6], latency=0.0010)
    >>> c = Answer(["1", "1", "1"], [0.8, 0.7, 0.6], latency=0.0015)
    >>> r = compare(s, c)
    >>> r.agreed, [round(d, 3) for d in r.abs_diffs], round(r.latency_delta, 4), r.disagreements
    (2, [0.1, 0.5, 0.0], 0.0005, (1,))
    >>> round(r.agreement, 3)
    0.667
    """
    rows = len(stable.labels)
    if len(candidate.labels) != rows or len(candidate.scores) != len(stable.scores):
        raise MismatchError(f"candidate answered {len(candidate.labels)} rows, stable {rows}")
    differ = tuple(
        i for i, (a, b) in enumerate(zip(stable.labels, candidate.labels, strict=True)) if a != b
    )
    diffs = tuple(abs(b - a) for a, b in zip(stable.scores, candidate.scores, strict=True))
    return Comparison(
        rows=rows,
        agreed=rows - len(differ),
        abs_diffs=diffs,
        latency_delta=candidate.latency - stable.latency,
        disagreements=differ,
    )
