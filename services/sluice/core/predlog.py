"""The prediction log: what the router writes for every answered request and the drift
monitor reads. One Redis stream per model, or several (``shards``: the router spreads a
busy model's entries over them in turn, so a Redis Cluster can put them on several
nodes); one entry per request (all its rows).

Entry fields (bytes -> bytes, as XADD stores them):

=========  ==================================================================
``v``      schema version of the entry, ``b"1"``
``rid``    the request id (``x-request-id``); row ``i`` of a batch is ``rid/i``
``ts``     when the request was answered, Unix seconds (float, as text)
``ver``    the model version that answered
``role``   ``primary`` (the user got this answer) or ``shadow`` (a mirrored copy)
``x``      the feature values the model saw, column-oriented JSON:
           ``{"feature": [v_row0, v_row1, ...], ...}``
``y``      outputs, JSON: ``{"label": [...], "score": [...]}``; score is the
           positive-class probability (binary) or the top probability; a
           regressor's label is ``""`` and its score the predicted value
``ms``     upstream latency in milliseconds (float, as text)
=========  ==================================================================

Column-oriented values let the monitor build numpy arrays without per-row Python loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

SCHEMA_VERSION = b"1"
Role = Literal["primary", "shadow"]


def stream_key(model: str, shard: int = 0) -> str:
    """Stream ``shard`` of one model's predictions: ``sluice:predlog:{churn}`` (the first,
    and the only one unless the log is spread), ``sluice:predlog:{churn~1}``, ...

    The braces are a Redis Cluster hash tag: each stream lives on one cluster node, and a
    model's streams hash to different slots. ``~`` is never part of a model's name.

    >>> stream_key("churn"), stream_key("churn", 2)
    ('sluice:predlog:{churn}', 'sluice:predlog:{churn~2}')
    """
    return f"sluice:predlog:{{{model}}}" if shard == 0 else f"sluice:predlog:{{{model}~{shard}}}"


def parse_stream_key(key: str) -> tuple[str, int]:
    """Inverse of :func:`stream_key`.

    >>> parse_stream_key("sluice:predlog:{churn~2}"), parse_stream_key("sluice:predlog:{churn}")
    (('churn', 2), ('churn', 0))
    """
    tag = key[key.index("{") + 1 : key.rindex("}")]
    model, _, shard = tag.partition("~")
    return (model, int(shard)) if shard.isdigit() else (tag, 0)


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    request_id: str
    timestamp: float
    version: str
    role: Role
    features: dict[str, list[Any]]
    labels: list[Any]
    scores: list[float]
    latency_ms: float

    @property
    def rows(self) -> int:
        return len(self.labels)

    def row_ids(self) -> list[str]:
        """The id of each row: the request id alone for one row, ``rid/i`` in a batch.

        >>> PredictionRecord("r1", 0, "v1", "primary", {}, [1, 0], [0.9, 0.1], 1).row_ids()
        ['r1/0', 'r1/1']
        """
        if self.rows == 1:
            return [self.request_id]
        return [f"{self.request_id}/{i}" for i in range(self.rows)]


def encode(record: PredictionRecord) -> dict[bytes, bytes]:
    """Fields for XADD."""
    return {
        b"v": SCHEMA_VERSION,
        b"rid": record.request_id.encode(),
        b"ts": repr(record.timestamp).encode(),
        b"ver": record.version.encode(),
        b"role": record.role.encode(),
        b"x": orjson.dumps(record.features, option=orjson.OPT_SERIALIZE_NUMPY),
        b"y": orjson.dumps(
            {"label": record.labels, "score": record.scores}, option=orjson.OPT_SERIALIZE_NUMPY
        ),
        b"ms": repr(record.latency_ms).encode(),
    }


class PredlogFormatError(ValueError):
    """An entry that is not a prediction record of a known schema version."""


def decode(fields: dict[bytes, bytes]) -> PredictionRecord:
    """Inverse of :func:`encode`; raises PredlogFormatError on an unknown or broken entry."""
    if fields.get(b"v") != SCHEMA_VERSION:
        raise PredlogFormatError(f"unknown prediction-log schema version {fields.get(b'v')!r}")
    try:
        role = fields[b"role"].decode()
        if role not in ("primary", "shadow"):
            raise PredlogFormatError(f"unknown role {role!r}")
        outputs = orjson.loads(fields[b"y"])
        return PredictionRecord(
            request_id=fields[b"rid"].decode(),
            timestamp=float(fields[b"ts"]),
            version=fields[b"ver"].decode(),
            role=role,  # type: ignore[arg-type]
            features=orjson.loads(fields[b"x"]),
            labels=outputs["label"],
            scores=outputs["score"],
            latency_ms=float(fields[b"ms"]),
        )
    except (KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, PredlogFormatError):
            raise
        raise PredlogFormatError(f"broken prediction-log entry: {exc}") from exc
