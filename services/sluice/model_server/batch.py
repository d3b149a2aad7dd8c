"""Batch scoring: ``sluice score``, one registered version over a whole table, in chunks.

The same ONNX model as the model server, and the same checks: each chunk's columns go
through ``validation.columns_from_instances`` and ``build_feed`` exactly as a V1
``:predict`` body would, so a table scores row for row as the online API answers, and a
bad value is refused naming the feature and the table row.

When the table lacks the model's features but has its entity key and a timestamp, and
the version was trained from the feature store (``card.feature_refs``), the features
are joined point-in-time from the views' offline sources (``--features``), as the
trainer joined them.

Output columns added to the table: ``prediction`` for a regressor; ``predicted_label``
and ``p_<class>`` per class for a classifier.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sluice.core.errors import InvalidInput
from sluice.core.registry import ModelCard, ModelRegistry
from sluice.model_server.backends import LABEL, PROBABILITIES, VALUE, OnnxRuntime
from sluice.model_server.service import check_outputs, input_specs
from sluice.model_server.validation import (
    InputSpec,
    ValidationError,
    build_feed,
    columns_from_instances,
)

CHUNK_ROWS = 10_000


class BatchScorer:
    """One version loaded for scoring tables."""

    def __init__(self, registry: ModelRegistry, model: str, version: str) -> None:
        self.card: ModelCard = registry.card(model, version)
        self.runtime = OnnxRuntime(registry.onnx_path(model, version))
        self.inputs: list[InputSpec] = input_specs(self.card, self.runtime)
        regression = self.card.task == "regression"
        check_outputs(self.card, self.runtime, (VALUE,) if regression else (LABEL, PROBABILITIES))

    def missing(self, table: pd.DataFrame) -> list[str]:
        return [s.name for s in self.inputs if s.name not in table.columns]

    def join_features(
        self, table: pd.DataFrame, definitions: Path, timestamp_column: str
    ) -> pd.DataFrame:
        """``table`` plus the card's feature-store features, point-in-time."""
        from sluice.feature_store.definitions import load_repo
        from sluice.feature_store.offline import OfflineStore

        if not self.card.feature_refs:
            raise InvalidInput(
                f"{self.card.model} {self.card.version} was not trained from the feature "
                "store (its card has no feature_refs): the table must hold every feature"
            )
        views = load_repo(definitions).by_name
        wanted = [r for r in self.card.feature_refs if r.split(":", 1)[1] not in table.columns]
        return OfflineStore(views).get_historical_features(
            table, wanted, timestamp_column=timestamp_column
        )

    def chunks(
        self, table: pd.DataFrame, chunk_rows: int = CHUNK_ROWS
    ) -> Iterator[tuple[int, pd.DataFrame]]:
        """(rows done, predictions of the chunk) for each chunk of ``table``, in order."""
        missing = self.missing(table)
        if missing:
            raise InvalidInput(
                f"the table lacks the model's features {', '.join(missing)}; give them, or "
                "the entity key and a timestamp with --features to join them"
            )
        names = [s.name for s in self.inputs]
        for start in range(0, len(table), chunk_rows):
            part = table.iloc[start : start + chunk_rows]
            yield start + len(part), self._score(part[names], start)

    def _score(self, part: pd.DataFrame, start: int) -> pd.DataFrame:
        records = [{k: _plain(v) for k, v in row.items()} for row in part.to_dict("records")]
        try:
            columns = columns_from_instances(self.inputs, records, len(records))
            feed, _ = build_feed(self.inputs, columns, len(records))
        except ValidationError as exc:
            raise InvalidInput(f"in the chunk starting at table row {start}: {exc}") from None
        outputs = self.runtime.run(feed)
        if self.card.task == "regression":
            values = np.asarray(outputs[VALUE], dtype=np.float64).reshape(-1)
            return pd.DataFrame({"prediction": values}, index=part.index)
        labels = [_label(v) for v in outputs[LABEL].tolist()]
        probabilities = np.asarray(outputs[PROBABILITIES], dtype=np.float64)
        out = pd.DataFrame({"predicted_label": labels}, index=part.index)
        for k, name in enumerate(self.card.classes):
            out[f"p_{name}"] = probabilities[:, k]
        return out


def _plain(value: Any) -> Any:
    """A table cell as JSON would carry it: numpy scalars as Python, NaN/NaT as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if value is pd.NaT:
        return None
    return value


def _label(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
