"""Which columns of a table are features, which is the label, and which are left out (why).

Rules, in order, for every column but the label:

- all values missing: left out;
- an id (named ``id``, ``*_id``, ``*Id``/``*ID``, or a text column unique in every row):
  left out; the first one is the entity key used for feature lookup;
- a timestamp (datetime dtype; a name such as ``event_timestamp``, ``signup_date``,
  ``created_at``; or text that parses as ISO 8601 dates): left out;
- bool: numeric, sent and stored as 0/1 (``dtype="bool"``), so a client may send
  ``true``/``false`` and the model sees one input, not two one-hot columns;
- integer or float: numeric, however few distinct values (e.g. ``num_products``);
- text or category: categorical, unless it has more than ``MAX_CATEGORIES`` values.

The task follows the label unless it is given: regression when the label is numeric (not
bool) and has a fraction or more than ``MAX_GUESSED_CLASSES`` distinct values, otherwise
classification. A classification label must have no missing values, at least two classes,
at most ``MAX_CLASSES``, and at least ``MIN_CLASS_ROWS`` rows per class (a stratified
held-out split needs them); a regression label must be finite numbers, not all the same,
in at least ``MIN_REGRESSION_ROWS`` rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pandas.api import types

from sluice.core.errors import InvalidInput

MAX_CATEGORIES = 200
MAX_CLASSES = 50
MIN_CLASS_ROWS = 5
MAX_GUESSED_CLASSES = 20
MIN_REGRESSION_ROWS = 10

_ID_NAME = re.compile(r"^id$|_id$", re.IGNORECASE)
_CAMEL_ID = re.compile(r"[a-z0-9](Id|ID)$")
_TIME_NAME = re.compile(r"(^|_)(timestamp|datetime|date|time|ts)(_|$)|_at$", re.IGNORECASE)

Kind = Literal["numeric", "categorical"]
Dtype = Literal["float64", "int64", "bool", "string"]
Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = ("classification", "regression")


@dataclass(frozen=True)
class Column:
    """A feature column: how the model sees it and its type in the table."""

    name: str
    kind: Kind
    dtype: Dtype


@dataclass(frozen=True)
class TableSchema:
    label: str
    features: list[Column]
    entity_key: str | None
    excluded: dict[str, str] = field(default_factory=dict)
    """Columns left out of the features, and why."""
    task: Task = "classification"


def guess_task(values: pd.Series) -> Task:
    """Regression for a numeric label with a fraction or many distinct values.

    >>> guess_task(pd.Series([0, 1, 1, 0]))
    'classification'
    >>> guess_task(pd.Series([151.0, 75.0, 141.0, 206.5]))
    'regression'
    >>> guess_task(pd.Series(range(100)))  # 100 distinct whole numbers: a count, not classes
    'regression'
    """
    if not types.is_numeric_dtype(values) or types.is_bool_dtype(values):
        return "classification"
    present = values.dropna()
    if not bool((present == present.round()).all()):
        return "regression"
    return "regression" if present.nunique() > MAX_GUESSED_CLASSES else "classification"


def infer_schema(table: pd.DataFrame, label: str, task: Task | None = None) -> TableSchema:
    """Sort the columns of ``table`` into label, features and the rest; refuse what cannot train.

    ``task`` None guesses it from the label (:func:`guess_task`). Raises InvalidInput with
    a message that says what is wrong and what the table has.
    """
    if table.shape[1] == 0 or len(table) == 0:
        raise InvalidInput(f"the table is empty ({len(table)} rows, {table.shape[1]} columns)")
    if label not in table.columns:
        columns = ", ".join(str(c) for c in table.columns)
        raise InvalidInput(f"no label column {label!r}; the table's columns are: {columns}")
    if task is None:
        task = guess_task(table[label])
    elif task not in TASKS:
        raise InvalidInput(f"unknown task {task!r}: pick classification or regression")
    check_label(table[label], task)
    features: list[Column] = []
    excluded: dict[str, str] = {}
    ids: list[str] = []
    for name in table.columns:
        if name == label:
            continue
        if not isinstance(name, str):
            excluded[str(name)] = "column names must be text"
            continue
        role = _classify(name, table[name])
        if isinstance(role, Column):
            features.append(role)
        else:
            excluded[name] = role
            if role.startswith("id"):
                ids.append(name)
    if not features:
        why = "; ".join(f"{k}: {v}" for k, v in excluded.items()) or "only the label"
        raise InvalidInput(f"no usable feature columns besides the label {label!r} ({why})")
    return TableSchema(label, features, ids[0] if ids else None, excluded, task)


def check_label(values: pd.Series, task: Task = "classification") -> None:
    """Refuse a label the model cannot learn from or be evaluated on."""
    name = values.name
    missing = int(values.isna().sum())
    if missing:
        raise InvalidInput(
            f"label column {name!r} has {missing} missing values; drop or fill those rows"
        )
    if task == "regression":
        _check_target(values)
        return
    counts = label_values(values).value_counts()
    if len(counts) < 2:
        raise InvalidInput(
            f"label column {name!r} has only one class ({str(counts.index[0])!r}); "
            "a classifier needs at least two"
        )
    if len(counts) > MAX_CLASSES:
        raise InvalidInput(
            f"label column {name!r} has {len(counts)} distinct values in {len(values)} rows "
            f"(at most {MAX_CLASSES} classes): is it a continuous target "
            "(--task regression) or an id?"
        )
    rare = counts[counts < MIN_CLASS_ROWS]
    if len(rare):
        listed = ", ".join(f"{str(k)!r} ({v})" for k, v in rare.items())
        raise InvalidInput(
            f"label column {name!r} has classes with fewer than {MIN_CLASS_ROWS} rows: {listed}; "
            f"each class needs at least {MIN_CLASS_ROWS} for a stratified held-out set "
            f"({len(counts)} classes in {len(values)} rows)"
        )


def _check_target(values: pd.Series) -> None:
    name = values.name
    if not types.is_numeric_dtype(values) or types.is_bool_dtype(values):
        raise InvalidInput(
            f"label column {name!r} is {values.dtype}, not numbers: a regression needs a "
            "numeric label (or train with --task classification)"
        )
    numbers = values.to_numpy(dtype="float64")
    if not np.isfinite(numbers).all():
        raise InvalidInput(f"label column {name!r} has infinite values; drop those rows")
    if len(values) < MIN_REGRESSION_ROWS:
        raise InvalidInput(
            f"label column {name!r} has {len(values)} rows; a regression needs at least "
            f"{MIN_REGRESSION_ROWS} (some are held out to score it)"
        )
    if values.nunique() < 2:
        raise InvalidInput(f"label column {name!r} has one value in every row; nothing to learn")


def target_values(values: pd.Series) -> pd.Series:
    """A regression label as float64."""
    return values.astype("float64")


def label_values(values: pd.Series) -> pd.Series:
    """The label as ONNX can carry it: int64 when every value is a whole number, else text.

    >>> label_values(pd.Series([1.0, 0.0])).tolist()
    [1, 0]
    >>> label_values(pd.Series([True, False])).tolist()
    ['True', 'False']
    """
    if types.is_numeric_dtype(values) and not types.is_bool_dtype(values):
        whole = values.dropna()
        if bool((whole == whole.round()).all()):
            return values.astype("int64")
    return values.astype(str).astype(object)


def feature_frame(table: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """The feature columns as the pipeline takes them: numbers as float64, text as str objects.

    Missing text stays missing (None); the caller fills it with the training default.
    """
    out = {}
    for col in schema.features:
        values = table[col.name]
        if col.kind == "numeric":
            out[col.name] = values.astype("float64")
        else:
            text = [None if pd.isna(v) else str(v) for v in values.to_numpy(dtype=object)]
            out[col.name] = pd.Series(text, index=table.index, dtype=object)
    return pd.DataFrame(out, index=table.index)


def _classify(name: str, values: pd.Series) -> Column | str:
    """The column as a feature, or the reason it is left out (ids' reasons start with "id")."""
    present = values.dropna()
    if present.empty:
        return "all values missing"
    textual = types.is_string_dtype(values) or types.is_object_dtype(values)
    textual = textual or isinstance(values.dtype, pd.CategoricalDtype)
    if _ID_NAME.search(name) or _CAMEL_ID.search(name):
        return "id, by name"
    if types.is_datetime64_any_dtype(values) or isinstance(values.dtype, pd.PeriodDtype):
        return "timestamp, datetime type"
    if _TIME_NAME.search(name):
        return "timestamp, by name"
    if types.is_bool_dtype(values):
        return Column(name, "numeric", "bool")
    if types.is_integer_dtype(values):
        return Column(name, "numeric", "int64")
    if types.is_float_dtype(values):
        return Column(name, "numeric", "float64")
    if not textual:
        return f"unsupported type {values.dtype}"
    text = present.astype(str)
    distinct = text.nunique()
    if distinct == len(values) and len(values) > 1:
        return "id, unique text in every row"
    if _parses_as_dates(text):
        return "timestamp, ISO 8601 text"
    if distinct > MAX_CATEGORIES:
        return f"text with {distinct} distinct values (at most {MAX_CATEGORIES} for a category)"
    return Column(name, "categorical", "string")


def _parses_as_dates(text: pd.Series) -> bool:
    sample = text.iloc[:200]
    if not sample.str.match(r"^\d{4}-\d{2}-\d{2}").all():
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="ISO8601", utc=True)
    return bool(parsed.notna().all())
