"""The feature store's errors: children of the core families, so the core handler maps them."""

from __future__ import annotations

from sluice.core.errors import InvalidInput, NotFound, Unavailable


class InvalidDefinition(InvalidInput):
    """A feature-view definition is malformed; the message names the field."""

    code = "invalid_definition"


class UnknownView(NotFound):
    """A request names a feature view that is not registered."""

    code = "unknown_view"


class UnknownFeature(NotFound):
    """A request names a feature its view does not have."""

    code = "unknown_feature"


class SourceError(InvalidInput):
    """A batch source (Parquet/CSV) is missing or does not match its view."""

    code = "invalid_source"


class OnlineStoreUnavailable(Unavailable):
    """Redis does not answer (down, restarting, loading, or the definitions are not loaded)."""

    code = "online_store_unavailable"
