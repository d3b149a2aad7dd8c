"""checkov on the default render: no failed check, and every skip carries its reason in the
chart (a checkov.io/skipN annotation)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.chart.conftest import CHART, ROOT


def test_checkov_passes_the_default_install_with_every_skip_explained(
    checkov: Path, helm: Path, tmp_path: Path
) -> None:
    rendered = tmp_path / "sluice.yaml"
    rendered.write_text(
        subprocess.run(
            [str(helm), "template", "sluice", str(CHART), "--namespace", "sluice"],
            capture_output=True, text=True, check=True, timeout=120,
        ).stdout
    )  # fmt: skip
    done = subprocess.run(
        [str(checkov), "-f", str(rendered), "--framework", "kubernetes", "--skip-download",
         "--compact", "-o", "json"],
        capture_output=True, text=True, timeout=600, check=False, cwd=ROOT,
    )  # fmt: skip
    report = json.loads(done.stdout)
    report = report if isinstance(report, dict) else report[0]
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert not failed, failed
    assert report["summary"]["parsing_errors"] == 0
    for skipped in report["results"]["skipped_checks"]:
        assert skipped["check_result"]["suppress_comment"], skipped["check_id"]
