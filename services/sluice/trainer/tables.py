"""Read, write, generate and fingerprint training tables (CSV or Parquet, by extension)."""

from __future__ import annotations

import hashlib
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
