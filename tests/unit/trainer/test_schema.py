from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sluice.core.errors import InvalidInput
from sluice.trainer.schema import (
    MAX_CATEGORIES,
    Column,
    feature_frame,
    infer_schema,
    label_values,
)


def mixed_table(rows: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "user_id": np.arange(rows),
            "email": [f"u{i}@example.com" for i in range(rows)],
            "signup_date": pd.date_range("2026-01-01", periods=rows, freq="D"),
            "last_seen": [f"2026-02-{1 + i % 28:02d}T10:00:00Z" for i in range(rows)],
            "updated_at": rng.integers(1_700_000_000, 1_800_000_000, rows),
            "PassengerId": np.arange(rows) + 1,
            "kids": rng.integers(0, 3, rows),
            "income": rng.normal(50, 10, rows),
            "vip": rng.random(rows) < 0.3,
            "plan": rng.choice(["a", "b"], rows),
            "notes": [None] * rows,
            "label": np.arange(rows) % 2,
        }
    )


def test_columns_are_sorted_into_features_ids_and_timestamps() -> None:
    schema = infer_schema(mixed_table(), "label")
    assert schema.features == [
        Column("kids", "numeric", "int64"),  # three values, still numeric
        Column("income", "numeric", "float64"),
        Column("vip", "numeric", "bool"),
        Column("plan", "categorical", "string"),
    ]
    assert schema.excluded == {
        "user_id": "id, by name",
        "email": "id, unique text in every row",
        "signup_date": "timestamp, datetime type",
        "last_seen": "timestamp, ISO 8601 text",
        "updated_at": "timestamp, by name",
        "PassengerId": "id, by name",
        "notes": "all values missing",
    }
    assert schema.entity_key == "user_id"


def test_text_with_too_many_values_is_not_a_category() -> None:
    rows = 2 * (MAX_CATEGORIES + 1)
    table = pd.DataFrame(
        {
            "city": [f"city{i % (MAX_CATEGORIES + 1)}" for i in range(rows)],
            "x": np.arange(rows, dtype=float),
            "y": np.arange(rows) % 2,
        }
    )
    schema = infer_schema(table, "y")
    assert [c.name for c in schema.features] == ["x"]
    assert "201 distinct values" in schema.excluded["city"]
    assert schema.entity_key is None


def test_feature_frame_makes_numbers_float_and_keeps_missing_text_missing() -> None:
    table = pd.DataFrame(
        {"n": [1, 2, 3] * 4, "b": [True, False, True] * 4, "c": ["x", None, 3] * 4, "y": [0, 1] * 6}
    )
    schema = infer_schema(table, "y")
    frame = feature_frame(table, schema)
    assert frame["n"].tolist()[:3] == [1.0, 2.0, 3.0]
    assert frame["b"].tolist()[:3] == [1.0, 0.0, 1.0]
    assert frame["c"].tolist()[:3] == ["x", None, "3"]


def test_whole_number_labels_become_ints_others_text() -> None:
    assert label_values(pd.Series([1.0, 0.0, 1.0])).tolist() == [1, 0, 1]
    assert label_values(pd.Series([True, False])).tolist() == ["True", "False"]
    assert label_values(pd.Series(["yes", "no"])).tolist() == ["yes", "no"]
    assert label_values(pd.Series([0.5, 1.5])).tolist() == ["0.5", "1.5"]


def refusal(table: pd.DataFrame, label: str = "y") -> str:
    with pytest.raises(InvalidInput) as caught:
        infer_schema(table, label)
    return caught.value.message


def test_an_empty_table_is_refused() -> None:
    assert "empty (0 rows, 2 columns)" in refusal(pd.DataFrame({"x": [], "y": []}))


def test_a_missing_label_column_lists_the_columns_there_are() -> None:
    message = refusal(pd.DataFrame({"age": [1, 2], "plan": ["a", "b"]}), label="churned")
    assert message == "no label column 'churned'; the table's columns are: age, plan"


def test_a_label_with_one_class_is_refused() -> None:
    assert "only one class ('1')" in refusal(pd.DataFrame({"x": range(10), "y": [1] * 10}))


def test_a_label_with_missing_values_is_refused() -> None:
    message = refusal(pd.DataFrame({"x": range(12), "y": [0, 1] * 5 + [None, None]}))
    assert "'y' has 2 missing values" in message


def test_a_continuous_label_makes_a_regression() -> None:
    schema = infer_schema(pd.DataFrame({"x": range(100), "y": np.linspace(0, 1, 100)}), "y")
    assert schema.task == "regression"


def test_a_continuous_label_forced_to_classes_is_refused() -> None:
    table = pd.DataFrame({"x": range(100), "y": np.linspace(0, 1, 100)})
    with pytest.raises(InvalidInput) as caught:
        infer_schema(table, "y", "classification")
    assert "100 distinct values in 100 rows" in caught.value.message
    assert "continuous target (--task regression) or an id" in caught.value.message


def test_a_few_whole_numbers_are_classes_unless_told_otherwise() -> None:
    table = pd.DataFrame({"x": range(30), "y": [1, 2, 3] * 10})
    assert infer_schema(table, "y").task == "classification"
    assert infer_schema(table, "y", "regression").task == "regression"


def test_a_text_label_cannot_be_a_regression() -> None:
    table = pd.DataFrame({"x": range(30), "y": ["a", "b", "c"] * 10})
    with pytest.raises(InvalidInput, match="not numbers: a regression needs a numeric label"):
        infer_schema(table, "y", "regression")


def test_a_constant_or_tiny_regression_target_is_refused() -> None:
    with pytest.raises(InvalidInput, match="one value in every row"):
        infer_schema(pd.DataFrame({"x": range(30), "y": [2.5] * 30}), "y", "regression")
    with pytest.raises(InvalidInput, match="has 4 rows; a regression needs at least 10"):
        infer_schema(pd.DataFrame({"x": range(4), "y": [0.5, 1.5, 2.5, 3.5]}), "y")


def test_a_class_too_small_for_a_held_out_set_is_refused() -> None:
    message = refusal(pd.DataFrame({"x": range(23), "y": ["a"] * 10 + ["b"] * 10 + ["c"] * 3}))
    assert "fewer than 5 rows: 'c' (3)" in message


def test_a_table_without_usable_features_says_why_each_column_was_left_out() -> None:
    table = pd.DataFrame({"id": range(10), "created_at": range(10), "y": [0, 1] * 5})
    message = refusal(table)
    assert message.startswith("no usable feature columns besides the label 'y'")
    assert "id: id, by name" in message
    assert "created_at: timestamp, by name" in message
