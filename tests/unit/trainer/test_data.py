from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sluice.core.errors import InvalidInput
from sluice.trainer.data import CATEGORIES, COLUMNS, END, NUMERIC, WINDOW, generate_churn

EXPECTED_COLUMNS = [
    "customer_id", "event_timestamp", "age", "tenure_months", "monthly_charges",
    "total_charges", "support_calls", "data_usage_gb", "days_since_last_login",
    "num_products", "region", "plan", "contract", "payment_method", "churned",
]  # fmt: skip


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return generate_churn(5000, seed=3)


def test_columns_are_exactly_the_ones_feature_definitions_are_written_against(
    table: pd.DataFrame,
) -> None:
    assert list(table.columns) == EXPECTED_COLUMNS == list(COLUMNS)
    ints = ["age", "tenure_months", "support_calls", "days_since_last_login", "num_products"]
    assert all(table[c].dtype == np.int64 for c in [*ints, "churned"])
    floats = ["monthly_charges", "total_charges", "data_usage_gb"]
    assert all(table[c].dtype == np.float64 for c in floats)
    assert set(ints) | set(floats) == set(NUMERIC)
    assert not table.isna().any().any()


def test_one_row_per_customer_with_plain_ids(table: pd.DataFrame) -> None:
    assert table["customer_id"].iloc[0] == "C000001"
    assert table["customer_id"].iloc[-1] == "C005000"
    assert table["customer_id"].is_unique


def test_timestamps_are_utc_and_cover_the_90_days_before_the_end(table: pd.DataFrame) -> None:
    stamps = table["event_timestamp"]
    assert str(stamps.dt.tz) == "UTC"
    assert stamps.min() >= pd.Timestamp(END - WINDOW)
    assert stamps.max() < pd.Timestamp(END)
    assert stamps.max() - stamps.min() > pd.Timedelta(days=85)


def test_categories_are_the_documented_ones(table: pd.DataFrame) -> None:
    for column, shares in CATEGORIES.items():
        assert set(table[column]) == set(shares)
    assert set(table["region"]) == {"north", "south", "east", "west"}
    assert set(table["contract"]) == {"month-to-month", "one-year", "two-year"}


def test_values_are_plausible(table: pd.DataFrame) -> None:
    assert table["age"].between(18, 90).all()
    assert table["tenure_months"].between(0, 72).all()
    assert table["num_products"].between(1, 5).all()
    assert (table["monthly_charges"] >= 15).all()
    assert (table["total_charges"] >= table["monthly_charges"] * 0.95 - 0.01).all()
    premium = table.loc[table["plan"] == "premium", "monthly_charges"].mean()
    basic = table.loc[table["plan"] == "basic", "monthly_charges"].mean()
    assert premium > basic + 40


def test_about_a_quarter_churn_and_churn_follows_the_features(table: pd.DataFrame) -> None:
    assert 0.20 <= table["churned"].mean() <= 0.30
    by_contract = table.groupby("contract")["churned"].mean()
    assert by_contract["month-to-month"] > 2 * by_contract["two-year"]
    calls = table.groupby(table["support_calls"] >= 3)["churned"].mean()
    assert calls[True] > calls[False]


def test_same_seed_same_table_other_seed_other_table() -> None:
    pd.testing.assert_frame_equal(generate_churn(300, 11), generate_churn(300, 11))
    assert not generate_churn(300, 11).equals(generate_churn(300, 12))


def test_numeric_shift_moves_the_mean_by_the_asked_standard_deviations(
    table: pd.DataFrame,
) -> None:
    shifted = generate_churn(5000, seed=3, shift_feature="monthly_charges", shift_amount=1.5)
    before, after = table["monthly_charges"], shifted["monthly_charges"]
    assert after.mean() - before.mean() == pytest.approx(1.5 * before.std(ddof=0), rel=0.01)
    same = [c for c in EXPECTED_COLUMNS if c not in {"monthly_charges", "churned"}]
    pd.testing.assert_frame_equal(shifted[same], table[same])
    # the label responds to the shift: dearer customers churn more
    assert shifted["churned"].mean() > table["churned"].mean() + 0.05


def test_integer_shift_stays_integer_and_non_negative() -> None:
    shifted = generate_churn(2000, 1, shift_feature="support_calls", shift_amount=-3.0)
    assert shifted["support_calls"].dtype == np.int64
    assert (shifted["support_calls"] >= 0).all()


def test_categorical_shift_moves_the_asked_fraction_to_the_target(table: pd.DataFrame) -> None:
    shifted = generate_churn(5000, 3, shift_feature="plan", shift_amount=0.5, shift_to="premium")
    before = (table["plan"] == "premium").mean()
    after = (shifted["plan"] == "premium").mean()
    assert after == pytest.approx(before + 0.5 * (1 - before), abs=0.03)
    assert (shifted.loc[table["plan"] == "premium", "plan"] == "premium").all()


def test_churn_rate_knob_sets_the_share_of_churners() -> None:
    assert generate_churn(5000, 4, churn_rate=0.5)["churned"].mean() == pytest.approx(0.5, abs=0.03)
    assert generate_churn(5000, 4, churn_rate=0.1)["churned"].mean() == pytest.approx(0.1, abs=0.02)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shift_feature": "shoe_size", "shift_amount": 1.0}, "cannot shift 'shoe_size'.*plan"),
        ({"shift_feature": "plan", "shift_amount": 0.5}, "--shift-to.*basic, standard, premium"),
        ({"shift_feature": "plan", "shift_amount": 2.0, "shift_to": "basic"}, "between 0 and 1"),
        ({"shift_feature": "age", "shift_amount": 1.0, "shift_to": "x"}, "'age' is numeric"),
        ({"churn_rate": 1.0}, "strictly between 0 and 1"),
    ],
)
def test_impossible_shifts_are_refused_with_the_reason(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        generate_churn(100, 0, **kwargs)  # type: ignore[arg-type]


def test_zero_rows_is_refused() -> None:
    with pytest.raises(InvalidInput, match="at least 1"):
        generate_churn(0, 0)
