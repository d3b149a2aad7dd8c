"""Read, write, generate and fingerprint training tables (CSV or Parquet, by extension)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from sluice.core.errors import InvalidInput
from sluice.trainer.data import generate_churn
from sluice.trainer.progress import QuietSteps, Steps

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_CHUNK_ROWS = 50_000


def table_format(path: Path) -> str:
    """``csv`` or ``parquet`` from the file's extension; anything else is refused."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise InvalidInput(
            f"{path}: unknown table format {path.suffix or '(no extension)'!r}; "
            "use .csv or .parquet"
        )
    return kind


def read_table(path: Path) -> pd.DataFrame:
    """The table in ``path``; a missing or unreadable file is InvalidInput saying why."""
    kind = table_format(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    try:
        if kind == "csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InvalidInput(f"{path}: cannot read it as {kind}: {exc}") from exc


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Write ``table`` as CSV or Parquet (by extension), creating the folder if needed."""
    kind = table_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        table.to_csv(path, index=False, lineterminator="\n")
    else:
        table.to_parquet(path, index=False)


def fingerprint(table: pd.DataFrame) -> str:
    """sha256 of the table written as CSV (UTF-8, header, no index, ``\\n`` line ends).

    CSV is the canonical form because it survives the trip through either file format: the
    same data read from a .csv or a .parquet file has the same fingerprint. Column order
    and row order count.
    """
    digest = hashlib.sha256()
    for start in range(0, max(len(table), 1), _CHUNK_ROWS):
        chunk = table.iloc[start : start + _CHUNK_ROWS]
        text = chunk.to_csv(index=False, header=start == 0, lineterminator="\n")
        digest.update(text.encode("utf-8"))
    return digest.hexdigest()


def load_table(
    data: Path | None, *, rows: int, seed: int, steps: Steps | None = None
) -> tuple[pd.DataFrame, str]:
    """The table in ``data``, or a generated churn table when it is None; and its source."""
    steps = steps or QuietSteps()
    if data is None:
        with steps.step(f"generate {rows:,} churn rows"):
            return generate_churn(rows, seed), f"generate_churn(rows={rows}, seed={seed})"
    with steps.step(f"read {data}"):
        return read_table(data), str(data)


def training_set(
    spine: pd.DataFrame,
    definitions: Path,
    refs: Sequence[str],
    *,
    label: str,
    timestamp_column: str = "event_timestamp",
    steps: Steps | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """A point-in-time-correct training table from the feature store's offline sources.

    ``spine`` gives the rows: each view's join key, ``timestamp_column`` and ``label``
    (other columns are ignored, so a feature column in the spine can never leak in). Every
    requested feature is the latest value at or before the row's timestamp within the view's
    ttl. ``refs`` are ``view:feature`` or ``view:*``; none means every feature of every view.
    Returns the table and the refs spelled out one feature each (what the card records).
    """
    from sluice.feature_store.definitions import load_repo
    from sluice.feature_store.offline import OfflineStore
    from sluice.feature_store.retrieval import parse_refs

    steps = steps or QuietSteps()
    views = load_repo(definitions).by_name
    wanted = list(refs) or [f"{name}:*" for name in views]
    pairs = parse_refs(wanted, views)
    keys = sorted({views[view].entity.join_key for view, _ in pairs})
    missing = [c for c in [*keys, timestamp_column, label] if c not in spine.columns]
    if missing:
        raise InvalidInput(
            f"the entity table needs columns {', '.join(missing)} to join features "
            f"(it has: {', '.join(map(str, spine.columns))})"
        )
    with steps.step(f"join {len(pairs)} features point-in-time onto {len(spine):,} rows"):
        table = OfflineStore(views).get_historical_features(
            spine[[*keys, timestamp_column, label]],
            wanted,
            timestamp_column=timestamp_column,
        )
    return table, [f"{view}:{feature}" for view, feature in pairs]
