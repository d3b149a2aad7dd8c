"""The trainer takes its training set from the feature store's offline sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sluice.core.errors import InvalidInput
from sluice.core.registry import ModelRegistry
from sluice.trainer.service import train_and_register
from sluice.trainer.tables import training_set

pytestmark = pytest.mark.integration

DEFINITIONS = """
views:
  - name: account
    entity: {join_key: customer_id, dtype: string}
    ttl: 30d
    source: {path: source.parquet}
    features:
      - {name: signal, dtype: float64}
      - {name: tier, dtype: string}
"""


def leaky_world(tmp_path: Path, n: int = 600) -> tuple[pd.DataFrame, Path]:
    """Each customer's `signal` is noise when labelled, and a copy of the label one day later.

    A join that looks past the label's timestamp learns the future copy and scores AUC 1.0;
    a point-in-time join only sees the noise.
    """
    rng = np.random.default_rng(3)
    ids = [f"C{i:04d}" for i in range(n)]
    labelled_at = pd.Timestamp("2026-10-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 86_400 * 10, n), unit="s"
    )
    label = rng.integers(0, 2, n)
    past = pd.DataFrame(
        {
            "customer_id": ids,
            "event_timestamp": labelled_at - pd.Timedelta(hours=1),
            "signal": rng.normal(size=n),
            "tier": rng.choice(["a", "b"], n),
        }
    )
    future = past.assign(event_timestamp=labelled_at + pd.Timedelta(days=1), signal=label * 10.0)
    pd.concat([past, future]).to_parquet(tmp_path / "source.parquet", index=False)
    (tmp_path / "features.yaml").write_text(DEFINITIONS)
    spine = pd.DataFrame(
        {
            "customer_id": ids,
            "event_timestamp": labelled_at,
            "churned": label,
            "signal": label * 10.0,  # a leaky column in the spine must be ignored too
        }
    )
    return spine, tmp_path / "features.yaml"


def test_training_set_is_point_in_time_and_the_card_records_the_refs(tmp_path: Path) -> None:
    spine, definitions = leaky_world(tmp_path)
    table, refs = training_set(spine, definitions, [], label="churned")
    assert refs == ["account:signal", "account:tier"]
    assert not (table["signal"].abs() == 10.0).any(), "a value from the future leaked in"

    card = train_and_register(
        table, model="leak", version="v1", registry=ModelRegistry(tmp_path / "reg"),
        algorithm="logreg", feature_refs=refs,
    )  # fmt: skip
    assert card.feature_refs == ["account:signal", "account:tier"]
    assert card.entity_key == "customer_id"
    assert card.metrics["roc_auc"] < 0.7  # noise only; a leaky join would give 1.0


def test_a_spine_without_the_join_key_is_refused_naming_it(tmp_path: Path) -> None:
    spine, definitions = leaky_world(tmp_path, n=50)
    with pytest.raises(InvalidInput, match="needs columns customer_id"):
        training_set(spine.drop(columns="customer_id"), definitions, [], label="churned")


def test_batch_scoring_joins_features_point_in_time_for_ids_and_timestamps(
    tmp_path: Path,
) -> None:
    from sluice.model_server.batch import BatchScorer

    spine, definitions = leaky_world(tmp_path, n=200)
    table, refs = training_set(spine, definitions, [], label="churned")
    registry = ModelRegistry(tmp_path / "reg")
    train_and_register(
        table, model="leak", version="v1", registry=registry, algorithm="logreg",
        feature_refs=refs,
    )  # fmt: skip
    scorer = BatchScorer(registry, "leak", "v1")
    ids_only = spine[["customer_id", "event_timestamp"]]
    assert scorer.missing(ids_only) == ["signal", "tier"]
    joined = scorer.join_features(ids_only, definitions, "event_timestamp")
    assert not (joined["signal"].abs() == 10.0).any(), "a value from the future leaked in"
    by_ids = pd.concat([part for _, part in scorer.chunks(joined, 64)])
    with_features = pd.concat([part for _, part in scorer.chunks(table, 64)])
    pd.testing.assert_frame_equal(by_ids, with_features)
    assert list(by_ids.columns) == ["predicted_label", "p_0", "p_1"]
