from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from sluice.trainer.card import PACKAGES, feature_specs, git_commit, package_versions, utc_now
from sluice.trainer.schema import Column


def test_feature_specs_take_defaults_and_categories_from_the_training_rows() -> None:
    train = pd.DataFrame({"n": [1.0, 2.0, 10.0], "c": ["b", "a", "b"]})
    full = pd.concat([train, pd.DataFrame({"n": [np.nan], "c": ["z"]})])
    columns = [Column("n", "numeric", "int64"), Column("c", "categorical", "string")]
    n, c = feature_specs(columns, train, full)
    assert (n.default, n.allow_missing, n.dtype) == (2.0, True, "int64")
    assert (c.categories, c.default, c.allow_missing) == (["a", "b"], "b", False)


def test_most_frequent_category_tie_goes_to_the_smallest() -> None:
    train = pd.DataFrame({"c": ["b", "a", "ab", "b", "a", "ab"]})
    (spec,) = feature_specs([Column("c", "categorical", "string")], train, train)
    assert spec.default == "a"


def test_package_versions_name_every_package_that_shapes_the_model() -> None:
    versions = package_versions()
    assert list(versions) == list(PACKAGES)
    assert all(re.match(r"\d+\.\d+", v) for v in versions.values())


def test_git_commit_inside_and_outside_a_checkout(tmp_path: Path) -> None:
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", git_commit() or "")
    assert git_commit(tmp_path) is None


def test_created_at_is_utc_iso_to_the_second() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", utc_now())
