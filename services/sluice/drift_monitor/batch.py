"""Turn a batch of raw prediction-log entries into column arrays, without a loop per record.

The router writes each entry's features column-oriented (``{"feature": [v0, v1, ...]}``),
so a batch becomes one orjson call and, per feature, one C-level chain over the entries.
Entries that are not valid prediction records are set aside (counted, acknowledged,
never a crash); so are features an entry lacks (their rows read as missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd

from sluice.core.predlog import SCHEMA_VERSION, PredlogFormatError, decode
from sluice.drift_monitor.stats import FloatArray, IntArray

Kind = Literal["numeric", "categorical"]
ObjectArray = npt.NDArray[np.object_]
RawEntry = tuple[str, dict[bytes, bytes] | None]
"""An entry as XREADGROUP returns it; fields are None for an entry deleted meanwhile."""


@dataclass(frozen=True)
class Batch:
    """Entries in stream order and their rows, column by column."""

    ids: list[str]
    """Every entry id read, in order, including broken and deleted ones (all get acked)."""
    entry_ids: list[str]
    """Ids of the usable entries; the arrays below are indexed by these."""
    request_ids: list[str]
    versions: list[str]
    roles: list[str]
    ts: FloatArray
    rows: IntArray
    """Rows per usable entry."""
    columns: dict[str, FloatArray | ObjectArray]
    scores: FloatArray
    labels: ObjectArray
    outputs: list[bytes]
    """Each usable entry's raw ``y`` field (kept as is for the ground-truth join)."""
    broken: int

    @property
    def starts(self) -> IntArray:
        """Index of each entry's first row in the column arrays."""
        return np.concatenate([[0], np.cumsum(self.rows)[:-1]]).astype(np.int64)


def decode_batch(entries: list[RawEntry], kinds: dict[str, Kind]) -> Batch:
    """Columns for the features in ``kinds`` from ``entries``.

    >>> from sluice.core.predlog import PredictionRecord, encode
    >>> rec = PredictionRecord("r", 1.0, "v1", "primary", {"a": [1.5, None]}, [1, 0], [0.9, 0.2], 1)
    >>> b = decode_batch([("1-0", encode(rec)), ("1-1", {b"v": b"9"})], {"a": "numeric"})
    >>> b.columns["a"].tolist(), b.rows.tolist(), b.broken
    ([1.5, nan], [2], 1)
    """
    ids = [entry_id for entry_id, _ in entries]
    good = [(i, f) for i, f in entries if f is not None]
    try:
        return _fast(ids, good, kinds, broken=len(entries) - len(good))
    except (KeyError, TypeError, ValueError, PredlogFormatError):
        valid = [(i, f) for i, f in good if _valid(f)]
        return _fast(ids, valid, kinds, broken=len(entries) - len(valid), checked=True)


def _valid(fields: dict[bytes, bytes]) -> bool:
    try:
        record = decode(fields)
    except PredlogFormatError:
        return False
    return len(record.scores) == record.rows and all(
        isinstance(v, list) and len(v) == record.rows for v in record.features.values()
    )


def _fast(
    ids: list[str],
    entries: list[tuple[str, dict[bytes, bytes]]],
    kinds: dict[str, Kind],
    *,
    broken: int,
    checked: bool = False,
) -> Batch:
    fields = [f for _, f in entries]
    if not checked and not all(map(SCHEMA_VERSION.__eq__, map(itemgetter(b"v"), fields))):
        raise PredlogFormatError("an entry of another schema version")
    xs: list[dict[str, list[Any]]] = orjson.loads(_array(map(itemgetter(b"x"), fields)))
    outputs: list[bytes] = list(map(itemgetter(b"y"), fields))
    ys: list[dict[str, list[Any]]] = orjson.loads(_array(outputs))
    labels = list(chain.from_iterable(map(itemgetter("label"), ys)))
    rows = np.fromiter(map(len, map(itemgetter("label"), ys)), dtype=np.int64, count=len(ys))
    scores = np.asarray(list(chain.from_iterable(map(itemgetter("score"), ys))), dtype=np.float64)
    if scores.size != len(labels):
        raise ValueError("scores and labels differ in length")
    columns = {name: _column(xs, name, kind, rows) for name, kind in kinds.items()}
    return Batch(
        ids=ids,
        entry_ids=[i for i, _ in entries],
        request_ids=[b.decode() for b in map(itemgetter(b"rid"), fields)],
        versions=[b.decode() for b in map(itemgetter(b"ver"), fields)],
        roles=[b.decode() for b in map(itemgetter(b"role"), fields)],
        ts=np.asarray(list(map(float, map(itemgetter(b"ts"), fields))), dtype=np.float64),
        rows=rows,
        columns=columns,
        scores=scores,
        labels=_objects(labels),
        outputs=outputs,
        broken=broken,
    )


def _array(parts: Any) -> bytes:
    return b"[" + b",".join(parts) + b"]"


def _column(
    xs: list[dict[str, list[Any]]], name: str, kind: Kind, rows: IntArray
) -> FloatArray | ObjectArray:
    total = int(rows.sum())
    try:
        values: list[Any] = list(chain.from_iterable(map(itemgetter(name), xs)))
    except (KeyError, TypeError):
        values = []
    if len(values) != total:  # an entry lacks the feature or has a column of another length
        values = list(
            chain.from_iterable(
                _fit(x.get(name), int(n)) for x, n in zip(xs, rows.tolist(), strict=True)
            )
        )
    if kind == "categorical":
        return _objects(values)
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )


def _objects(values: list[Any]) -> ObjectArray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _fit(column: Any, rows: int) -> list[Any]:
    if isinstance(column, list) and len(column) == rows:
        return column
    return [None] * rows


def infer_kinds(entries: list[RawEntry]) -> dict[str, Kind]:
    """Feature kinds from the first usable entry, for a model with no reference profile."""
    for _, fields in entries:
        if fields is None or fields.get(b"v") != SCHEMA_VERSION:
            continue
        try:
            x = orjson.loads(fields[b"x"])
        except (KeyError, orjson.JSONDecodeError):
            continue
        return {
            name: "categorical" if any(isinstance(v, str) for v in col) else "numeric"
            for name, col in x.items()
            if isinstance(col, list)
        }
    return {}
