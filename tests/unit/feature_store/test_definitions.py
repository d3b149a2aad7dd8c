"""Feature-view definitions from YAML (definitions.py): bad ones name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sluice.feature_store.definitions import FeatureView, load_repo, parse_repo, parse_ttl
from sluice.feature_store.errors import InvalidDefinition

EXAMPLE = Path(__file__).parents[3] / "examples" / "churn" / "features.yaml"


def good_view(**changes: Any) -> dict[str, Any]:
    view = {
        "name": "customer_activity",
        "entity": {"join_key": "customer_id", "dtype": "string"},
        "ttl": "30d",
        "source": {"path": "churn.parquet"},
        "features": [{"name": "support_calls", "dtype": "int64"}],
    }
    return {**view, **changes}


def problem(*views: Any) -> str:
    with pytest.raises(InvalidDefinition) as caught:
        parse_repo({"views": list(views)}, base_dir=Path("/repo"), origin="features.yaml")
    return caught.value.message


def test_the_churn_example_covers_the_table() -> None:
    repo = load_repo(EXAMPLE)
    names = [f.name for v in repo.views for f in v.features]
    assert sorted(names) == sorted([
        "age", "tenure_months", "monthly_charges", "total_charges", "support_calls",
        "data_usage_gb", "days_since_last_login", "num_products",
        "region", "plan", "contract", "payment_method",
    ])  # fmt: skip
    assert {v.entity.join_key for v in repo.views} == {"customer_id"}
    source = Path(repo.views[0].source.path)
    assert source.is_absolute() and source == EXAMPLE.parents[2] / ".sluice" / "churn.parquet"


def test_relative_paths_resolve_against_the_file_absolute_ones_stay(tmp_path: Path) -> None:
    file = tmp_path / "defs" / "features.yaml"
    file.parent.mkdir()
    views = [good_view(), good_view(name="other", source={"path": "/data/x.csv"})]
    file.write_text(yaml.safe_dump({"views": views}))
    repo = load_repo(file)
    assert repo.views[0].source.path == str(tmp_path / "defs" / "churn.parquet")
    assert repo.views[0].source.file_format == "parquet"
    assert repo.views[1].source.path == "/data/x.csv"
    assert repo.views[1].source.file_format == "csv"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"features": [{"name": "calls", "dtype": "integer"}]},
         "views[0] (customer_activity).features[0].dtype: Input should be 'int64'"),
        ({"ttl": "thirty days"},
         "views[0] (customer_activity).ttl: ttl 'thirty days' is not a duration"),
        ({"ttl": 0}, "views[0] (customer_activity).ttl: ttl must be positive"),
        ({"entity": {"join_key": "customer_id", "dtype": "uuid"}},
         "views[0] (customer_activity).entity.dtype: Input should be 'string' or 'int64'"),
        ({"name": "Customer Activity"}, "views[0] (Customer Activity).name: String should match"),
        ({"feature": []}, "views[0] (customer_activity).feature: Extra inputs are not permitted"),
        ({"source": {"path": "churn.xlsx"}},
         "views[0] (customer_activity).source: cannot tell the format of"),
        ({"features": []}, "views[0] (customer_activity): features: list at least one feature"),
        ({"features": [{"name": "a", "dtype": "int64"}, {"name": "a", "dtype": "bool"}]},
         "views[0] (customer_activity): feature 'a' is listed twice"),
        ({"features": [{"name": "customer_id", "dtype": "string"}]},
         "feature 'customer_id' has the name of the join key or timestamp field"),
    ],
)  # fmt: skip
def test_a_bad_definition_names_the_field(change: dict[str, Any], expected: str) -> None:
    message = problem(good_view(**change))
    assert message.startswith("features.yaml: ")
    assert expected in message


def test_a_missing_field_is_named() -> None:
    view = good_view()
    del view["ttl"]
    assert "views[0] (customer_activity).ttl: Field required" in problem(view)


def test_every_problem_is_listed_and_view_names_must_be_unique() -> None:
    message = problem(good_view(ttl="x"), good_view(name="b", features=[{"name": "f"}]))
    assert "views[0] (customer_activity).ttl" in message
    assert "views[1] (b).features[0].dtype: Field required" in message
    assert "repeated: customer_activity" in problem(good_view(), good_view())


def test_not_a_definitions_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidDefinition, match="expected a mapping with a 'views:' list"):
        parse_repo(["a"], base_dir=tmp_path)
    (tmp_path / "bad.yaml").write_text("views: [\n")
    with pytest.raises(InvalidDefinition, match="not valid YAML"):
        load_repo(tmp_path / "bad.yaml")
    with pytest.raises(InvalidDefinition, match="cannot read definitions"):
        load_repo(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 2_592_000), ("1w", 604_800), ("1d12h", 129_600), ("90m", 5_400), ("45s", 45),
     ("3600", 3_600), (86_400, 86_400)],
)  # fmt: skip
def test_ttl_durations(text: str | int, seconds: int) -> None:
    assert parse_ttl(text) == seconds


def test_schema_id_follows_the_packed_layout_only() -> None:
    base = parse_repo({"views": [good_view()]}, base_dir=Path("/r")).views[0]
    same = base.model_copy(update={"ttl": 10, "description": "changed"})
    assert same.schema_id == base.schema_id
    reordered = parse_repo(
        {"views": [good_view(features=[{"name": "support_calls", "dtype": "float64"}])]},
        base_dir=Path("/r"),
    ).views[0]
    assert reordered.schema_id != base.schema_id
    assert FeatureView.from_json(base.to_json()) == base
