"""Point-in-time correct training sets (offline.py) on cases where a naive join leaks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sluice.core.errors import InvalidInput
from sluice.feature_store.errors import SourceError
from sluice.feature_store.offline import OfflineStore, read_source
from tests.unit.feature_store.fakes import view

DAY = 86_400


def ts(*days: float) -> pd.Series:
    return pd.Series(pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(days, unit="D"))


def store(
    tmp_path: Path,
    source: pd.DataFrame,
    *,
    ttl: int = 30 * DAY,
    fmt: str = "parquet",
    features: tuple[tuple[str, str], ...] = (("spend", "float64"),),
) -> OfflineStore:
    path = tmp_path / f"source.{fmt}"
    if fmt == "parquet":
        source.to_parquet(path)
    else:
        source.to_csv(path, index=False)
    return OfflineStore([view("activity", features, ttl=ttl, path=str(path))])


def entities(ids: list[str], days: list[float], **extra: list[object]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": ids, "event_timestamp": ts(*days), **extra})


def test_a_later_value_never_leaks_into_an_earlier_row(tmp_path: Path) -> None:
    source = pd.DataFrame(
        {
            "customer_id": ["C1", "C1", "C1"],
            "event_timestamp": ts(1, 3, 5),
            "spend": [10.0, 30.0, 50.0],
        }
    )
    rows = entities(["C1", "C1", "C1", "C1"], [2, 3, 4.999, 0.5], churned=[0, 1, 0, 1])
    out = store(tmp_path, source).get_historical_features(rows, ["activity:spend"])
    # A naive "latest value per customer" join would give 50 everywhere.
    assert out["spend"].tolist()[:3] == [10.0, 30.0, 30.0]
    assert np.isnan(out["spend"].iloc[3])  # no value yet at day 0.5
    assert out["churned"].tolist() == [0, 1, 0, 1]  # pass-through columns are kept


def test_values_older_than_ttl_are_not_joined(tmp_path: Path) -> None:
    source = pd.DataFrame({"customer_id": ["C1"], "event_timestamp": ts(1), "spend": [10.0]})
    rows = entities(["C1", "C1", "C1"], [1.5, 3, 3.0001])
    out = store(tmp_path, source, ttl=2 * DAY).get_historical_features(rows, ["activity:*"])
    assert out["spend"].iloc[0] == 10.0
    assert out["spend"].iloc[1] == 10.0  # exactly ttl old: still valid, as online
    assert np.isnan(out["spend"].iloc[2])


def test_another_entitys_rows_are_never_used(tmp_path: Path) -> None:
    source = pd.DataFrame(
        {"customer_id": ["C2", "C1"], "event_timestamp": ts(1, 4), "spend": [99.0, 10.0]}
    )
    out = store(tmp_path, source).get_historical_features(
        entities(["C1", "C2"], [2, 2]), ["activity:spend"]
    )
    assert np.isnan(out["spend"].iloc[0])
    assert out["spend"].iloc[1] == 99.0


def test_ties_go_to_the_later_row_in_the_file(tmp_path: Path) -> None:
    source = pd.DataFrame(
        {"customer_id": ["C1", "C1"], "event_timestamp": ts(1, 1), "spend": [1.0, 2.0]}
    )
    out = store(tmp_path, source).get_historical_features(entities(["C1"], [1]), ["activity:spend"])
    assert out["spend"].tolist() == [2.0]


def test_order_index_duplicates_and_time_zones_are_kept(tmp_path: Path) -> None:
    source = pd.DataFrame(  # unsorted, naive timestamps (UTC)
        {
            "customer_id": ["C1", "C2", "C1"],
            "event_timestamp": pd.to_datetime(["2026-01-03", "2026-01-01", "2026-01-01"]),
            "spend": [3.0, 20.0, 1.0],
        }
    )
    rows = pd.DataFrame(
        {
            "customer_id": ["C2", "C1", "C1"],
            # 2026-01-03 01:00 at +02:00 is 2026-01-02 23:00 UTC: before the day-3 value
            "event_timestamp": [pd.Timestamp("2026-01-05", tz="UTC")] * 2
            + [pd.Timestamp("2026-01-03T01:00:00+02:00")],
        },
        index=[10, 5, 7],
    )
    out = store(tmp_path, source, fmt="csv").get_historical_features(rows, ["activity:spend"])
    assert out.index.tolist() == [10, 5, 7]
    assert out["spend"].tolist() == [20.0, 3.0, 1.0]


def test_many_views_and_full_feature_names(tmp_path: Path) -> None:
    a = tmp_path / "a.parquet"
    b = tmp_path / "b.parquet"
    pd.DataFrame({"customer_id": ["C1"], "event_timestamp": ts(1), "x": [1]}).to_parquet(a)
    pd.DataFrame({"customer_id": ["C1"], "event_timestamp": ts(2), "x": [2.5]}).to_parquet(b)
    offline = OfflineStore(
        [
            view("va", [("x", "int64")], path=str(a), ttl=30 * DAY),
            view("vb", [("x", "float64")], path=str(b), ttl=30 * DAY),
        ]
    )
    rows = entities(["C1", "C1"], [1.5, 3])
    with pytest.raises(InvalidInput, match="'x' is in more than one view"):
        offline.get_historical_features(rows, ["va:x", "vb:x"])
    out = offline.get_historical_features(rows, ["va:x", "vb:x"], full_feature_names=True)
    assert out["va__x"].tolist() == [1, 1]
    assert out["vb__x"].iloc[1] == 2.5 and np.isnan(out["vb__x"].iloc[0])


def test_matches_a_brute_force_join_on_random_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 400
    source = pd.DataFrame(
        {
            "customer_id": rng.choice(["C1", "C2", "C3", "C4"], n),
            "event_timestamp": ts(*np.round(rng.uniform(0, 60, n), 1)),  # ties happen
            "spend": np.arange(n, dtype=float),
        }
    )
    rows = entities(list(rng.choice(["C1", "C2", "C3", "C5"], 300)),
                    list(np.round(rng.uniform(0, 70, 300), 1)))  # fmt: skip
    out = store(tmp_path, source, ttl=5 * DAY).get_historical_features(rows, ["activity:spend"])
    for i, row in rows.iterrows():
        age = row.event_timestamp - source.event_timestamp
        ok = (source.customer_id == row.customer_id) & (age >= pd.Timedelta(0))
        ok &= age <= pd.Timedelta(days=5)
        candidates = source[ok]
        if candidates.empty:
            assert np.isnan(out["spend"][i])
        else:
            newest = candidates[candidates.event_timestamp == candidates.event_timestamp.max()]
            assert out["spend"][i] == newest["spend"].iloc[-1]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (pd.DataFrame({"event_timestamp": ts(1)}), "no column 'customer_id', the join key"),
        (pd.DataFrame({"customer_id": ["C1"]}), "no timestamp column 'event_timestamp'"),
        (pd.DataFrame({"customer_id": [1], "event_timestamp": ts(1)}),
         "is int64, but the view's entity is string"),
        (pd.DataFrame({"customer_id": ["C1"], "event_timestamp": ["soon"]}), "not timestamps"),
        (pd.DataFrame({"customer_id": ["C1"], "event_timestamp": ts(1), "spend": [1.0]}),
         "already has a column 'spend'"),
    ],
)  # fmt: skip
def test_bad_entity_frames_say_what_is_wrong(
    tmp_path: Path, rows: pd.DataFrame, message: str
) -> None:
    source = pd.DataFrame({"customer_id": ["C1"], "event_timestamp": ts(1), "spend": [1.0]})
    with pytest.raises(InvalidInput, match=message):
        store(tmp_path, source).get_historical_features(rows, ["activity:spend"])


def test_sources_that_do_not_fit_their_view(tmp_path: Path) -> None:
    source = pd.DataFrame({"customer_id": ["C1"], "event_timestamp": ts(1), "spend": ["lots"]})
    offline = store(tmp_path, source)
    with pytest.raises(SourceError, match="feature 'spend' is declared float64 but column"):
        read_source(offline.views["activity"])
    missing = view("activity", [("calls", "int64")], path=str(tmp_path / "source.parquet"))
    with pytest.raises(SourceError, match="has no column 'calls'"):
        read_source(missing)
    with pytest.raises(SourceError, match="does not exist"):
        read_source(view(path=str(tmp_path / "nope.parquet")))


def test_int_features_with_gaps_read_back(tmp_path: Path) -> None:
    source = pd.DataFrame(
        {"customer_id": ["C1", "C2"], "event_timestamp": ts(1, 1), "calls": [3.0, np.nan]}
    )
    offline = store(tmp_path, source, features=(("calls", "int64"),))
    frame = read_source(offline.views["activity"])
    assert frame["calls"].iloc[0] == 3 and np.isnan(frame["calls"].iloc[1])
