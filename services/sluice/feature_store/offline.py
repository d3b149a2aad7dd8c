"""The offline store: views' batch sources (Parquet/CSV) and point-in-time correct training sets.

``OfflineStore(repo).get_historical_features(entity_df, ["view:feature", "view:*"])`` joins,
for every entity row and its timestamp, the latest source row of that entity whose event
timestamp is at or before the row's timestamp and no older than the view's ttl. A value
from the row's future is never used. Ties (same entity and timestamp) go to the row that
comes later in the file, exactly as materialisation picks them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from pandas.api import types as ptypes

from sluice.core.errors import InvalidInput
from sluice.feature_store.definitions import FeatureView, Repo
from sluice.feature_store.errors import SourceError
from sluice.feature_store.retrieval import parse_refs

_ROW, _TS = "__sluice_row", "__sluice_ts"


def read_source(
    view: FeatureView, features: Sequence[str] | None = None, *, limit_rows: int | None = None
) -> pd.DataFrame:
    """The view's source: join key, ``event_timestamp`` (UTC, microseconds) and features.

    The timestamp column is renamed to ``event_timestamp`` whatever the source calls it;
    rows without a timestamp or entity are dropped; types are checked against the view.
    ``limit_rows`` reads only the first rows (enough to check the schema).
    """
    names = list(features) if features is not None else [f.name for f in view.features]
    key, ts_field = view.entity.join_key, view.source.timestamp_field
    wanted = [key, ts_field, *names]
    path = Path(view.source.path)
    if not path.is_file():
        raise SourceError(f"view {view.name!r}: source {path} does not exist")
    try:
        if view.source.file_format == "parquet":
            import pyarrow.parquet as pq

            present = set(pq.read_schema(path).names)
            _require(view, path, wanted, present)
            if limit_rows is None:
                frame = pd.read_parquet(path, columns=wanted)
            else:
                batches = pq.ParquetFile(path).iter_batches(batch_size=limit_rows, columns=wanted)
                frame = next(iter(batches)).to_pandas()
        else:
            frame = pd.read_csv(path, usecols=lambda c: c in set(wanted), nrows=limit_rows)
            _require(view, path, wanted, set(frame.columns))
    except (OSError, ValueError) as exc:
        raise SourceError(f"view {view.name!r}: cannot read {path}: {exc}") from None
    frame = frame[wanted].rename(columns={ts_field: "event_timestamp"})
    frame["event_timestamp"] = _utc(frame["event_timestamp"], f"{path}: column {ts_field!r}")
    frame = frame.dropna(subset=[key, "event_timestamp"])
    _check_key(frame[key], view.entity.dtype, f"view {view.name!r}: source column {key!r}")
    for feature in view.features:
        if feature.name in names and not _fits(frame[feature.name], feature.dtype):
            raise SourceError(
                f"view {view.name!r}: feature {feature.name!r} is declared {feature.dtype} "
                f"but column {feature.name!r} of {path} is {frame[feature.name].dtype}"
            )
    return frame.reset_index(drop=True)


class OfflineStore:
    """Point-in-time correct reads of the views' batch sources, for training sets."""

    def __init__(self, views: Repo | Mapping[str, FeatureView] | Sequence[FeatureView]) -> None:
        if isinstance(views, Repo):
            self.views = views.by_name
        elif isinstance(views, Mapping):
            self.views = dict(views)
        else:
            self.views = {v.name: v for v in views}

    def get_historical_features(
        self,
        entity_df: pd.DataFrame,
        features: Sequence[str],
        *,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
    ) -> pd.DataFrame:
        """``entity_df`` (same rows, order and index) plus one column per requested feature.

        ``entity_df`` needs each view's join key and ``timestamp_column`` (naive means UTC);
        other columns (e.g. the label) are passed through. A feature with no row at or
        before the timestamp within ttl is missing (NaN / None; an int64 feature with a
        missing value becomes float64). Columns are named ``feature``, or ``view__feature``
        with ``full_feature_names``.
        """
        pairs = parse_refs(list(features), self.views)
        by_view: dict[str, list[str]] = {}
        for view_name, feature in pairs:
            by_view.setdefault(view_name, []).append(feature)
        outputs = [f"{v}__{f}" if full_feature_names else f for v, f in pairs]
        _check_outputs(entity_df, outputs, full_feature_names)
        if timestamp_column not in entity_df.columns:
            raise InvalidInput(f"entity_df has no timestamp column {timestamp_column!r}")
        times = _utc(entity_df[timestamp_column], f"entity_df column {timestamp_column!r}")
        if times.isna().any():
            raise InvalidInput(f"entity_df column {timestamp_column!r} has missing timestamps")
        result = entity_df.copy()
        for view_name, names in by_view.items():
            joined = self._join_view(self.views[view_name], names, entity_df, times)
            for name in names:
                column = f"{view_name}__{name}" if full_feature_names else name
                result[column] = joined[name].to_numpy()
        return result

    def _join_view(
        self, view: FeatureView, names: list[str], entity_df: pd.DataFrame, times: pd.Series
    ) -> pd.DataFrame:
        key = view.entity.join_key
        if key not in entity_df.columns:
            raise InvalidInput(
                f"entity_df has no column {key!r}, the join key of view {view.name!r}"
            )
        _check_key(entity_df[key], view.entity.dtype, f"entity_df column {key!r}", InvalidInput)
        if entity_df[key].isna().any():
            raise InvalidInput(f"entity_df column {key!r} has missing values")
        left = pd.DataFrame(
            {_ROW: range(len(entity_df)), key: _key_values(entity_df[key]), _TS: times.to_numpy()}
        )
        source = read_source(view, names).rename(columns={"event_timestamp": _TS})
        source[key] = _key_values(source[key])
        joined = pd.merge_asof(
            left.sort_values(_TS, kind="stable"),
            source.sort_values(_TS, kind="stable"),
            on=_TS,
            by=key,
            direction="backward",
            allow_exact_matches=True,
            tolerance=pd.Timedelta(seconds=view.ttl),
        )
        return joined.sort_values(_ROW).reset_index(drop=True)


def _require(view: FeatureView, path: Path, wanted: list[str], present: set[str]) -> None:
    missing = [c for c in wanted if c not in present]
    if missing:
        raise SourceError(
            f"view {view.name!r}: source {path} has no column {missing[0]!r} "
            f"(columns: {', '.join(sorted(present))})"
        )


def _utc(series: pd.Series, where: str) -> pd.Series:
    try:
        return pd.to_datetime(series, utc=True).astype("datetime64[us, UTC]")
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{where}: not timestamps ({exc})") from None


def _key_values(series: pd.Series) -> pd.Series:
    """Join keys on both sides of the merge in one dtype."""
    return series.astype("int64") if ptypes.is_integer_dtype(series) else series.astype("str")


def _check_key(
    series: pd.Series, dtype: str, where: str, error: type[InvalidInput] = SourceError
) -> None:
    ok = (
        ptypes.is_integer_dtype(series) and not ptypes.is_bool_dtype(series)
        if dtype == "int64"
        else ptypes.is_string_dtype(series) or ptypes.is_object_dtype(series)
    )
    if not ok:
        raise error(f"{where} is {series.dtype}, but the view's entity is {dtype}")


def _fits(series: pd.Series, dtype: str) -> bool:
    """Whether a source column can hold a feature of ``dtype`` (ints with nulls are floats)."""
    if dtype == "int64":
        if ptypes.is_integer_dtype(series) and not ptypes.is_bool_dtype(series):
            return True
        values = series.dropna()
        return bool(ptypes.is_float_dtype(series) and (values == values.round()).all())
    if dtype == "float64":
        return ptypes.is_numeric_dtype(series) and not ptypes.is_bool_dtype(series)
    if dtype == "bool":
        return ptypes.is_bool_dtype(series) or all(isinstance(v, bool) for v in series.dropna())
    return bool(
        ptypes.is_string_dtype(series) or ptypes.is_object_dtype(series) or series.isna().all()
    )


def _check_outputs(entity_df: pd.DataFrame, outputs: list[str], full: bool) -> None:
    for i, name in enumerate(outputs):
        if name in outputs[:i]:
            raise InvalidInput(
                f"features: {name!r} is in more than one view; pass full_feature_names=True"
            )
        if name in entity_df.columns:
            hint = "" if full else " or pass full_feature_names=True"
            raise InvalidInput(
                f"entity_df already has a column {name!r}: pass only the join key, the "
                f"timestamp and pass-through columns such as the label{hint}"
            )
