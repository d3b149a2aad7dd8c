"""Materialisation: the latest value per entity of a time window, from the offline source
into the online store.

Windows are half-open, ``[start, end)``, with ``end`` never later than now, so successive
incremental runs neither skip nor repeat a row. The store's newer-wins write makes a run
idempotent (running it twice changes nothing) and safe beside pushes of fresher values.
``shard=(i, N)`` keeps the entities with ``shard_of(entity, N) == i``: N jobs (e.g. a
Kubernetes Indexed Job) together cover every entity exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sluice.feature_store.backends import Catalog, RedisOnlineStore, Row
from sluice.feature_store.definitions import FeatureView
from sluice.feature_store.keys import effective_watermark, shard_of, watermark_field
from sluice.feature_store.offline import read_source

Progress = Callable[[str, int, int], None]
"""Called with (view, rows done, rows to write) as batches land."""
CHUNK = 5_000


@dataclass(frozen=True)
class ViewRun:
    view: str
    start: float
    end: float
    """The window, Unix seconds, ``[start, end)``."""
    entities: int
    """Entities with a row in the window (the rows sent to Redis)."""
    written: int
    skipped: int
    """Rows not stored because Redis held a value as new or newer."""


def window_start(
    view: FeatureView,
    catalog: Catalog,
    end: float,
    shard: tuple[int, int] | None,
) -> float:
    """Where an incremental run of ``view`` starts: its (shard's) watermark, else the view's
    effective watermark, else ``end - ttl`` (older values would be OUTSIDE_MAX_AGE anyway).

    >>> from sluice.feature_store.definitions import Entity, Feature, FeatureView, Source
    >>> v = FeatureView(name="v", entity=Entity(join_key="k"), ttl=100,
    ...     features=(Feature(name="f", dtype="int64"),), source=Source(path="/t.csv"))
    >>> window_start(v, Catalog(watermarks={"v": 950.0}), 1000.0, None)
    950.0
    >>> window_start(v, Catalog(), 1000.0, (0, 2))
    900.0
    """
    field = watermark_field(view.name, shard)
    if field in catalog.watermarks:
        return catalog.watermarks[field]
    whole = effective_watermark(view.name, catalog.watermarks)
    return whole if whole is not None else end - view.ttl


def advances(old: float | None, start: float, end: float) -> bool:
    """Whether a run of ``[start, end)`` moves a watermark at ``old``: it must reach past it
    and leave no gap after it.

    >>> advances(None, 0, 10), advances(5.0, 5.0, 10), advances(5.0, 6.0, 10), advances(12.0, 0, 10)
    (True, True, False, False)
    """
    return old is None or (start <= old < end)


def latest_rows(
    frame: pd.DataFrame, view: FeatureView, start: float, end: float, shard: tuple[int, int] | None
) -> pd.DataFrame:
    """The newest row of each entity with ``start <= event_timestamp < end`` (in its shard).

    Ties on the timestamp go to the row later in the source, as in the offline join.
    """
    key = view.entity.join_key
    stamps = frame["event_timestamp"]
    lo = pd.Timestamp(start, unit="s", tz="UTC")
    hi = pd.Timestamp(end, unit="s", tz="UTC")
    window = frame[(stamps >= lo) & (stamps < hi)]
    if shard is not None and shard[1] > 1:
        index, total = shard
        owner = {e: shard_of(e, total) for e in pd.unique(window[key])}
        window = window[window[key].map(owner) == index]
    ordered = window.sort_values("event_timestamp", kind="stable")
    return ordered.drop_duplicates(key, keep="last")


def to_rows(frame: pd.DataFrame, view: FeatureView) -> list[Row]:
    """(entity, event microseconds, values in view order) with missing values as None."""
    key = view.entity.join_key
    micros = frame["event_timestamp"].to_numpy("datetime64[us]").astype(np.int64).tolist()
    if view.entity.dtype == "int64":
        entities: list[Any] = frame[key].astype("int64").tolist()
    else:
        entities = [str(e) for e in frame[key].tolist()]
    columns = [_python_values(frame[f.name], f.dtype) for f in view.features]
    values = [list(v) for v in zip(*columns, strict=True)]
    return list(zip(entities, micros, values, strict=True))


def _python_values(series: pd.Series, dtype: str) -> list[Any]:
    missing = series.isna().to_numpy()
    if dtype == "float64":
        raw: list[Any] = series.to_numpy(dtype=np.float64, na_value=np.nan).tolist()
    elif dtype == "int64":
        raw = series.fillna(0).to_numpy().astype(np.int64).tolist()
    elif dtype == "bool":
        raw = [bool(v) for v in series.fillna(False).tolist()]
    else:
        raw = [str(v) for v in series.fillna("").tolist()]
    return [None if gone else v for v, gone in zip(raw, missing.tolist(), strict=True)]


async def materialize(
    store: RedisOnlineStore,
    views: Sequence[FeatureView],
    *,
    end: float,
    start: float | None = None,
    shard: tuple[int, int] | None = None,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
) -> list[ViewRun]:
    """Load each view's window into Redis; ``start=None`` means incremental (per view)."""
    catalog = await store.refresh()
    end = min(end, clock())
    runs = []
    for view in views:
        begin = window_start(view, catalog, end, shard) if start is None else start
        frame = latest_rows(read_source(view), view, begin, end, shard) if begin < end else None
        rows = to_rows(frame, view) if frame is not None else []
        written = skipped = 0
        if progress:
            progress(view.name, 0, len(rows))
        for offset in range(0, len(rows), CHUNK):
            result = await store.write(view, rows[offset : offset + CHUNK], kind="materialize")
            written, skipped = written + result.written, skipped + result.skipped
            if progress:
                progress(view.name, min(offset + CHUNK, len(rows)), len(rows))
        field = watermark_field(view.name, shard)
        if begin < end and advances(catalog.watermarks.get(field), begin, end):
            await store.set_watermark(field, end)
        runs.append(ViewRun(view.name, begin, end, len(rows), written, skipped))
    return runs
