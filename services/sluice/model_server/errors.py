"""The model server's errors, children of the core families."""

from __future__ import annotations

from sluice.core.errors import NotFound, Unavailable


class ModelNotFound(NotFound):
    """The request names a model or version this server does not serve."""

    code = "model_not_found"


class ModelNotReady(Unavailable):
    """The model is still loading (or failed to load); try again later."""

    code = "model_not_ready"
