"""The router's errors: children of the core root, by family."""

from __future__ import annotations

from sluice.core.errors import (
    InvalidInput,
    NotFound,
    SluiceError,
    Unauthorized,
    Unavailable,
)


class ModelNotRouted(NotFound):
    """The model has no route in the table."""

    code = "model_not_routed"


class VersionNotRouted(NotFound):
    """A pinned version (header or path) is not one of the model's versions in the table."""

    code = "version_not_routed"


class MissingFeature(InvalidInput):
    """A feature is missing or stale after lookup and the model's policy is ``reject``."""

    code = "missing_feature"


class InvalidEntity(InvalidInput):
    """An entity id the feature store would refuse (the message names the request's field):
    the client's mistake, not a failed lookup."""

    code = "invalid_entity"


class InvalidHeader(InvalidInput):
    """A request header the router would forward upstream is not what it must be (the
    router forwards only ``inference-header-content-length``, a number): 400, never sent."""

    status = 400
    code = "invalid_header"


class RateLimited(SluiceError):
    """The client sent more than its rate allows; ``retry_after`` seconds."""

    status = 429
    code = "rate_limited"


class BadGateway(SluiceError):
    """No replica of the version answered (connect error or 5xx after retries)."""

    status = 502
    code = "bad_gateway"


class GatewayTimeout(SluiceError):
    """The version did not answer within its timeout."""

    status = 504
    code = "gateway_timeout"


class TableNotLoaded(Unavailable):
    """The router has not read its routing table from Redis yet: it cannot tell whether the
    model is routed (a 503 to retry, never a 404 that says it is not)."""

    code = "routing_table_not_loaded"


class LookupUnavailable(Unavailable):
    """The feature store (or its Redis) did not answer the lookup. The message says so
    without the addresses involved; the detail is in the router's log."""

    code = "feature_lookup_unavailable"


__all__ = [
    "BadGateway",
    "GatewayTimeout",
    "InvalidEntity",
    "InvalidHeader",
    "LookupUnavailable",
    "MissingFeature",
    "ModelNotRouted",
    "RateLimited",
    "TableNotLoaded",
    "Unauthorized",
    "Unavailable",
    "VersionNotRouted",
]
