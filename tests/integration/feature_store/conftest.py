"""Sources and feature definitions for the feature store's tests against real Redis."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def write_source(path: Path, rows: list[tuple[str, float, int, float]]) -> Path:
    """A Parquet source of (customer_id, days after T0, calls, spend) rows."""
    frame = pd.DataFrame(rows, columns=["customer_id", "day", "calls", "spend"])
    frame["event_timestamp"] = T0 + pd.to_timedelta(frame.pop("day"), unit="D")
    frame.to_parquet(path)
    return path


def definitions(path: Path, source: Path, *, ttl: str = "3650d") -> Path:
    path.write_text(
        f"""
views:
  - name: activity
    entity: {{join_key: customer_id, dtype: string}}
    ttl: {ttl}
    source: {{path: {source}}}
    features:
      - {{name: calls, dtype: int64}}
      - {{name: spend, dtype: float64}}
"""
    )
    return path
