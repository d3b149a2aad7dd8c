"""A realistic, deterministic customer-churn table, with optional shifts for drift demos.

One row per customer. The label follows a logistic function of the features plus noise,
so a good classifier reaches a held-out ROC AUC of about 0.85. The same ``rows`` and
``seed`` always give the same table; a shift changes only what it names, so a shifted
table has the same customers as the unshifted one and differs where the shift says.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from sluice.core.errors import InvalidInput

END = datetime(2026, 11, 1, tzinfo=UTC)
"""Event timestamps fall in the ``WINDOW`` ending here (exclusive)."""
WINDOW = timedelta(days=90)

LABEL = "churned"
ENTITY_KEY = "customer_id"
NUMERIC = (
    "age", "tenure_months", "monthly_charges", "total_charges", "support_calls",
    "data_usage_gb", "days_since_last_login", "num_products",
)  # fmt: skip
INTEGER = frozenset(
    {"age", "tenure_months", "support_calls", "days_since_last_login", "num_products"}
)
CATEGORIES: dict[str, dict[str, float]] = {
    "region": {"north": 0.30, "south": 0.25, "east": 0.25, "west": 0.20},
    "plan": {"basic": 0.40, "standard": 0.35, "premium": 0.25},
    "contract": {"month-to-month": 0.55, "one-year": 0.25, "two-year": 0.20},
    "payment_method": {"card": 0.30, "bank": 0.25, "electronic_check": 0.30, "mailed_check": 0.15},
}
COLUMNS = (ENTITY_KEY, "event_timestamp", *NUMERIC, *CATEGORIES, LABEL)

_INTERCEPT = -2.5
"""Chosen so that about a quarter of the customers churn when no rate is asked for."""


def generate_churn(
    rows: int,
    seed: int,
    *,
    shift_feature: str | None = None,
    shift_amount: float = 0.0,
    shift_to: str | None = None,
    churn_rate: float | None = None,
) -> pd.DataFrame:
    """The churn table: ``rows`` customers, the same for the same ``seed``.

    Shifts, for drift demos (applied before the label is drawn, so the label responds to
    the shifted feature the way it would in the real world):

    - ``shift_feature`` numeric: add ``shift_amount`` standard deviations of that column
      (integers are rounded, nothing goes below zero).
    - ``shift_feature`` categorical: move a ``shift_amount`` fraction (0..1) of the rows
      that are not ``shift_to`` to ``shift_to``.
    - ``churn_rate``: set the intercept so that the expected share of churners is this
      (0..1), e.g. 0.5; ``None`` keeps the natural rate of about 25%.
    """
    if rows < 1:
        raise InvalidInput(f"rows must be at least 1, got {rows}")
    if churn_rate is not None and not 0 < churn_rate < 1:
        raise InvalidInput(f"churn rate must be strictly between 0 and 1, got {churn_rate}")
    rng = np.random.default_rng(seed)
    table = _features(rows, rng)
    if shift_feature is not None:
        _shift(table, shift_feature, shift_amount, shift_to, np.random.default_rng([seed, 1]))
    logit = _logit(table) + rng.normal(0.0, 0.4, rows)
    intercept = _INTERCEPT if churn_rate is None else _solve_intercept(logit, churn_rate)
    churn_p = 1.0 / (1.0 + np.exp(-(logit + intercept)))
    table[LABEL] = (rng.random(rows) < churn_p).astype(np.int64)
    return table[list(COLUMNS)]


def _features(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    def pick(column: str) -> np.ndarray:
        names = list(CATEGORIES[column])
        return rng.choice(
            np.array(names, dtype=object), size=rows, p=list(CATEGORIES[column].values())
        )

    region, plan, contract, payment = (pick(c) for c in CATEGORIES)
    offset = rng.integers(0, int(WINDOW.total_seconds()), rows)
    stamps = pd.to_datetime(END - WINDOW) + pd.to_timedelta(offset, unit="s")
    age = np.clip(np.rint(rng.normal(45, 14, rows)), 18, 90)
    tenure_mean = np.select([contract == "one-year", contract == "two-year"], [30.0, 45.0], 14.0)
    tenure = np.clip(np.rint(rng.exponential(tenure_mean)), 0, 72)
    products = 1 + rng.binomial(4, 0.3, rows)
    base = np.select([plan == "standard", plan == "premium"], [60.0, 95.0], 30.0)
    monthly = np.round(np.clip(base + 8.0 * (products - 1) + rng.normal(0, 6, rows), 15, None), 2)
    total = np.round(monthly * np.maximum(tenure, 1) * rng.uniform(0.95, 1.05, rows), 2)
    calls = rng.poisson(np.where(plan == "basic", 1.8, 1.1))
    usage_scale = np.select([plan == "standard", plan == "premium"], [12.0, 25.0], 5.0)
    usage = np.round(rng.gamma(2.0, usage_scale / 2.0), 2)
    login = np.clip(np.rint(rng.exponential(12.0, rows)), 0, 365)
    return pd.DataFrame(
        {
            ENTITY_KEY: [f"C{i:06d}" for i in range(1, rows + 1)],
            "event_timestamp": stamps,
            "age": age.astype(np.int64),
            "tenure_months": tenure.astype(np.int64),
            "monthly_charges": monthly,
            "total_charges": total,
            "support_calls": calls.astype(np.int64),
            "data_usage_gb": usage,
            "days_since_last_login": login.astype(np.int64),
            "num_products": products.astype(np.int64),
            "region": pd.array(region, dtype="str"),
            "plan": pd.array(plan, dtype="str"),
            "contract": pd.array(contract, dtype="str"),
            "payment_method": pd.array(payment, dtype="str"),
        }
    )


def _logit(t: pd.DataFrame) -> np.ndarray:
    """The churn log-odds before the intercept: what a customer's features say."""
    contract, payment = t["contract"].to_numpy(), t["payment_method"].to_numpy()
    return np.asarray(
        1.6 * (contract == "month-to-month")
        - 1.2 * (contract == "two-year")
        - 0.06 * t["tenure_months"].to_numpy()
        + 0.03 * (t["monthly_charges"].to_numpy() - 65.0)
        + 0.45 * t["support_calls"].to_numpy()
        + 0.06 * t["days_since_last_login"].to_numpy()
        + 0.7 * (payment == "electronic_check")
        - 0.3 * (t["num_products"].to_numpy() - 1)
        - 0.02 * (t["age"].to_numpy() - 45.0)
        - 0.015 * t["data_usage_gb"].to_numpy()
        + 0.25 * (t["region"].to_numpy() == "south"),
        dtype=np.float64,
    )


def _solve_intercept(logit: np.ndarray, rate: float) -> float:
    """The intercept b with mean(sigmoid(logit + b)) == rate, by bisection.

    >>> round(_solve_intercept(np.zeros(4), 0.5), 6)
    0.0
    >>> round(_solve_intercept(np.zeros(4), 0.25), 4)  # log(0.25 / 0.75)
    -1.0986
    """
    low, high = -30.0, 30.0
    for _ in range(100):
        mid = (low + high) / 2
        if float(np.mean(1.0 / (1.0 + np.exp(-(logit + mid))))) < rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _shift(
    table: pd.DataFrame, feature: str, amount: float, to: str | None, rng: np.random.Generator
) -> None:
    if feature in NUMERIC:
        if to is not None:
            raise InvalidInput(f"--shift-to is for categorical features; {feature!r} is numeric")
        column = table[feature].to_numpy(dtype=np.float64)
        moved = np.clip(column + amount * float(np.std(column)), 0, None)
        table[feature] = np.rint(moved).astype(np.int64) if feature in INTEGER else moved.round(2)
    elif feature in CATEGORIES:
        known = list(CATEGORIES[feature])
        if to not in known:
            raise InvalidInput(
                f"shifting {feature!r} needs a target category (--shift-to): one of "
                f"{', '.join(known)}"
            )
        if not 0 <= amount <= 1:
            raise InvalidInput(
                f"for a categorical feature the shift amount is the fraction of rows moved "
                f"to {to!r}, between 0 and 1; got {amount}"
            )
        values = table[feature].to_numpy(dtype=object)
        moved = (values != to) & (rng.random(len(values)) < amount)
        values[moved] = to
        table[feature] = pd.array(values, dtype="str")
    else:
        raise InvalidInput(
            f"cannot shift {feature!r}: pick one of {', '.join((*NUMERIC, *CATEGORIES))}"
        )
