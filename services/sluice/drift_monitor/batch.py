"""Turn a batch of raw prediction-log entries into column arrays, without a loop per record.

The router writes each entry's features column-oriented (``{"feature": [v0, v1, ...]}``),
so a batch becomes one orjson call, one C-level pass over the entries that picks every
feature's lists, and per feature one join of those lists into a numpy column.
Entries that are not valid prediction records are set aside (counted, acknowledged,
never a crash); so are features an entry lacks (their rows read as missing).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import reduce
from itertools import chain
from operator import iadd, itemgetter
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
    shard: int = 0
    """Which of the model's streams the entries came from (``sluice.core.predlog``)."""

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
    with collector_paused():
        ids = [entry_id for entry_id, _ in entries]
        good = [(i, f) for i, f in entries if f is not None]
        try:
            return _fast(ids, good, kinds, broken=len(entries) - len(good))
        except (KeyError, TypeError, ValueError, PredlogFormatError):
            valid = [(i, f) for i, f in good if _valid(f)]
            return _fast(ids, valid, kinds, broken=len(entries) - len(valid), checked=True)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Keep Python's cyclic garbage collector out of one bulk decode.

    Decoding 1,000 one-row entries of 20 features makes ~25,000 lists and dicts that
    hold no cycles and are all freed (by reference counting) before the decode returns.
    With the collector on, they trigger a young collection every 700 allocations, the
    ones still alive are promoted, and the promotions trigger full collections of the
    whole heap (~150,000 objects with numpy, scipy, pandas and FastAPI loaded, ~0.1 s
    each): 38% of the read loop's time. The decode awaits nothing, so no other task runs
    meanwhile; an already paused collector stays paused.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


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
    label_lists, score_lists = _gather(ys, ["label", "score"])
    labels = _concat(label_lists)
    rows = np.fromiter(map(len, label_lists), dtype=np.int64, count=len(ys))
    scores = np.asarray(_concat(score_lists), dtype=np.float64)
    if scores.size != len(labels):
        raise ValueError("scores and labels differ in length")
    gathered: list[tuple[Any, ...] | None]
    try:
        gathered = list(_gather(xs, list(kinds)))
    except (KeyError, TypeError):  # an entry lacks a feature: gather feature by feature
        gathered = [None] * len(kinds)
    columns = {
        name: _column(xs, name, kind, rows, lists)
        for (name, kind), lists in zip(kinds.items(), gathered, strict=True)
    }
    return Batch(
        ids=ids,
        entry_ids=[i for i, _ in entries],
        request_ids=[b.decode() for b in map(itemgetter(b"rid"), fields)],
        versions=[b.decode() for b in map(itemgetter(b"ver"), fields)],
        roles=[b.decode() for b in map(itemgetter(b"role"), fields)],
        ts=np.fromiter(
            map(float, map(itemgetter(b"ts"), fields)), dtype=np.float64, count=len(fields)
        ),
        rows=rows,
        columns=columns,
        scores=scores,
        labels=_objects(labels),
        outputs=outputs,
        broken=broken,
    )


def _array(parts: Any) -> bytes:
    return b"[" + b",".join(parts) + b"]"


def _gather(items: list[dict[str, Any]], names: list[str]) -> list[tuple[Any, ...]]:
    """Per name, every item's value, in one pass over the items (one C call per item).

    >>> _gather([{"a": [1], "b": [2]}, {"a": [3], "b": [4]}], ["a", "b"])
    [([1], [3]), ([2], [4])]
    """
    if not items or not names:
        return [() for _ in names]
    if len(names) == 1:
        return [tuple(map(itemgetter(names[0]), items))]
    return list(zip(*map(itemgetter(*names), items), strict=True))


def _concat(lists: Any) -> list[Any]:
    """The lists joined, like ``list(chain.from_iterable(lists))``, but extending in place.

    >>> _concat(([1.5], [None, 2]))
    [1.5, None, 2]
    """
    return reduce(iadd, lists, [])


def _column(
    xs: list[dict[str, list[Any]]],
    name: str,
    kind: Kind,
    rows: IntArray,
    lists: tuple[Any, ...] | None,
) -> FloatArray | ObjectArray:
    total = int(rows.sum())
    try:
        values = _concat(map(itemgetter(name), xs) if lists is None else lists)
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
