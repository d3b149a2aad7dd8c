from __future__ import annotations

from sluice.core.registry import FeatureSpec
from sluice.trainer.cli import example_value, format_table


def test_table_columns_are_aligned_without_trailing_blanks() -> None:
    text = format_table([["model", "version", "f1"], ["churn", "v1", "0.5"], ["x", "v10", "-"]])
    assert text == "model  version  f1\nchurn  v1       0.5\nx      v10      -\n"


def test_example_values_are_sent_the_way_a_client_would() -> None:
    def spec(**kwargs: object) -> FeatureSpec:
        return FeatureSpec.model_validate({"name": "f", **kwargs})

    assert example_value(spec(kind="numeric", dtype="int64", default=2.5)) == 2
    assert example_value(spec(kind="numeric", dtype="float64", default=64.19)) == 64.19
    assert example_value(spec(kind="numeric", dtype="bool", default=1.0)) is True
    categorical = spec(kind="categorical", dtype="string", categories=["a", "b"], default="b")
    assert example_value(categorical) == "b"
