"""The drift monitor's errors, children of the core root."""

from __future__ import annotations

from sluice.core.errors import InvalidInput, NotFound


class ModelNotWatched(NotFound):
    """The model has no registered version, no prediction log and no report."""

    code = "model_not_watched"


class InvalidFeedback(InvalidInput):
    """A feedback batch that cannot be joined (lengths differ, too many items)."""

    code = "invalid_feedback"
