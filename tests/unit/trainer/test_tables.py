from __future__ import annotations

from pathlib import Path

import pytest

from sluice.core.errors import InvalidInput
from sluice.trainer.data import generate_churn
from sluice.trainer.tables import fingerprint, read_table, write_table


def test_csv_and_parquet_round_trips_keep_the_fingerprint(tmp_path: Path) -> None:
    table = generate_churn(200, 5)
    write_table(table, tmp_path / "t.csv")
    write_table(table, tmp_path / "sub" / "t.parquet")
    from_csv = read_table(tmp_path / "t.csv")
    from_parquet = read_table(tmp_path / "sub" / "t.parquet")
    assert len(from_csv) == len(from_parquet) == 200
    assert fingerprint(from_csv) == fingerprint(from_parquet) == fingerprint(table)


def test_fingerprint_changes_with_one_value() -> None:
    table = generate_churn(200, 5)
    changed = table.copy()
    changed.loc[17, "monthly_charges"] += 0.01
    assert fingerprint(changed) != fingerprint(table)
    assert len(fingerprint(table)) == 64


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        InvalidInput, match=r"unknown table format '\.xlsx'; use \.csv or \.parquet"
    ):
        write_table(generate_churn(5, 0), tmp_path / "t.xlsx")


def test_missing_and_unreadable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(InvalidInput, match="cannot read it as parquet"):
        read_table(tmp_path / "bad.parquet")
