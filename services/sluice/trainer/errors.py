"""The trainer's own errors; unusable tables and names are core's InvalidInput."""

from __future__ import annotations

from sluice.core.errors import SluiceError


class ParityFailed(SluiceError):
    """The ONNX model's probabilities differ from scikit-learn's beyond the tolerance.

    Nothing is registered: serving the export would give answers the evaluated model
    never gave.
    """

    code = "parity_failed"
